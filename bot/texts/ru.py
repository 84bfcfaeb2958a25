"""Русский."""

from bot.texts.base import Texts

RU = Texts(
    help=(
        "Я собрал несколько языковых моделей в одном чате. Напишите мне — ответит текущая "
        "модель, с учётом нашего разговора. Пришлите фото, чтобы спросить о нём (модели "
        "со зрением), или голосовое сообщение.\n\n"
        "Текущая модель: <b>{model}</b>\n\n{commands}"
    ),
    commands={
        "help": "что я умею",
        "model": "выбрать модель",
        "new": "начать новый разговор",
        "stop": "остановить ответ",
        "compare": "спросить несколько моделей сразу: /compare <вопрос>",
        "image": "нарисовать картинку: /image <описание>",
        "top": "рейтинг моделей по голосам",
        "limits": "сколько осталось бесплатных запросов на сегодня",
        "language": "выбрать язык, на котором я говорю",
    },
    model_choose="Выберите модель. Сейчас: <b>{model}</b>",
    model_switched="Теперь отвечает {model}.",
    model_unknown="Модели «{model_id}» нет. Доступны: {models}",
    model_current_mark="✅ ",
    new_done="Начали новый разговор: прежний я забыл.",
    language_name="Русский",
    language_choose="Выберите язык, на котором я говорю. Сейчас: <b>{language}</b>",
    language_auto="🌐 Как в Telegram",
    language_set="Теперь я говорю по-русски.",
    language_auto_set="Снова говорю на языке вашего Telegram: {language}.",
    language_unknown="Языка «{code}» нет. Доступны: {codes}",
    model_image_current="Картинки для /image: <b>{model}</b> (🎨 ниже)",
    model_image_mark="🎨 ",
    model_image_switched="Теперь /image рисует {model}.",
    unsupported=("Пока я понимаю только текст. Напишите вопрос сообщением; /help — что я умею."),
    unsupported_media=("Такие сообщения я не понимаю. Я понимаю {things}; /help — что я умею."),
    can_text="текст",
    can_photos="фото",
    can_voice="голосовые сообщения",
    list_and=" и ",
    image_usage=("Опишите картинку после команды, например: /image маяк на рассвете, акварель"),
    image_unavailable="Здесь нет модели для картинок, так что рисовать я не могу.",
    photo_prompt="Опиши это изображение.",
    photo_no_vision=(
        "{model} не видит изображений. Видят: {models}. "
        "Переключитесь через /model и отправьте фото ещё раз."
    ),
    file_too_big="Файл слишком большой: предел — {limit} МБ.",
    download_failed="Не удалось получить файл из Telegram. Отправьте его ещё раз.",
    voice_too_long=(
        "Голосовое сообщение длится {duration} с, а я расшифровываю до {limit} с. "
        "Отправьте покороче."
    ),
    voice_transcript="<blockquote>🎙 {text}</blockquote>",
    voice_empty="Не удалось разобрать слова в этом голосовом сообщении.",
    thinking="Думаю…",
    error_auth="{model} не принял наши ключи доступа. Выберите другую модель: /model.",
    error_not_found="{model} сейчас недоступна у провайдера. Выберите другую: /model.",
    error_bad_request="{model} не смогла принять этот запрос. Попробуйте сформулировать иначе.",
    error_context="Разговор слишком длинный для {model}. Отправьте /new, чтобы начать заново.",
    error_rate_limited="{model} сейчас перегружена. Попробуйте через минуту или выберите /model.",
    error_timeout="{model} отвечала слишком долго. Попробуйте ещё раз.",
    error_unavailable="{model} сейчас недоступна. Попробуйте позже или выберите другую: /model.",
    error_unsupported="{model} так не умеет. Выберите другую модель: /model.",
    error_generic="С {model} что-то пошло не так. Попробуйте ещё раз.",
    interrupted="(ответ прерван: {reason})",
    shutting_down="бот перезапускался. Спросите ещё раз",
    stopped="(остановлено)",
    stop_button="⏹ Стоп",
    retry_button="🔄 Повторить",
    still_answering=(
        "Я ещё отвечаю на прошлое сообщение: нажмите «Стоп» (или /stop) либо подождите."
    ),
    nothing_to_stop="Сейчас ничего не пишется.",
    retry_expired="Этот запрос слишком старый; отправьте его заново.",
    prompt_too_long="Сообщение слишком длинное: {length} символов, предел — {limit}.",
    empty_answer="{model} вернула пустой ответ. Попробуйте ещё раз.",
    service_unavailable="Бот временно недоступен. Попробуйте через минуту.",
    limit_model=(
        "Сегодняшние {limit} запросов к {model} израсходованы. Лимит обновится в {time} "
        "(через {left}); другие модели, возможно, ещё ответят: /model."
    ),
    limit_overall=(
        "Бесплатный лимит на сегодня ({limit} кредитов) израсходован. Он обновится в {time} "
        "(через {left})."
    ),
    limits_overall="<b>Сегодня:</b> осталось {left} из {limit} кредитов.",
    limits_no_overall="<b>Сегодня:</b> общего лимита нет.",
    limits_resets="Лимиты обновятся в {time} (через {left}).",
    limits_model="{model}: {cost} кред. за запрос",
    limits_model_capped="{model}: {cost} кред. за запрос, осталось {left} из {limit} запросов",
    limits_admin="Вы администратор: лимиты на вас не действуют.",
    compare_choose=(
        "Выберите от 2 до 4 моделей для /compare. Сейчас: {models}\n\n"
        "Затем спросите: /compare <вопрос>"
    ),
    compare_toggle_bounds="В сравнении участвуют от {low} до {high} моделей.",
    compare_need_models="Доступно меньше двух моделей — сравнивать нечего.",
    compare_skipped="Пропущены (дневной лимит исчерпан): {models}.",
    compare_footer_time="{seconds:.1f} с",
    compare_footer_tokens="токенов: {tokens}",
    compare_continue="Продолжить с {model}",
    compare_best="👍 Лучший",
    compare_continued="Теперь отвечает {model}; разговор продолжается с её ответа.",
    compare_expired="Это сравнение устарело. Спросите снова: /compare.",
    vote_counted="Голос за {model} учтён. Рейтинг: /top.",
    vote_already="Вы уже голосовали в этом сравнении.",
    top_title="<b>Модели по голосам</b>",
    top_line="{place}. {model}: {votes}",
    top_empty="Голосов пока нет: нажмите «👍 Лучший» под ответом /compare.",
    stats_title="<b>{date}</b>: пользователей — {users}",
    stats_model="{model}: запросов — {count}",
    stats_failures="{provider}: сбоев — {count}",
    reload_done="Каталог моделей перечитан на всех репликах.",
    reload_refused="Каталог не перечитан:\n{problem}",
    hours_minutes="{h} ч {m} мин",
    minutes="{m} мин",
)
