"""English."""

from bot.texts.base import Texts

EN = Texts(
    code="en",
    help=(
        "I put several language models in one chat. Write to me and the current model "
        "answers, remembering our conversation. Send a photo to ask about it (vision "
        "models) or a voice message to talk. In a group, mention me or reply to my message "
        "and I answer.\n\n"
        "Current model: <b>{model}</b>\n\n{commands}"
    ),
    commands={
        "help": "what I can do",
        "model": "choose the model",
        "new": "start a new conversation",
        "stop": "stop the answer being written",
        "compare": "ask several models at once: /compare <question>",
        "image": "draw a picture: /image <description>",
        "arena": "a blind battle of two models: /arena <question>",
        "top": "the leaderboard of blind battles and votes",
        "limits": "what is left of today's free allowance",
        "language": "choose the language I speak",
    },
    model_choose="Choose a model. Now: <b>{model}</b>",
    model_switched="Now talking to {model}.",
    model_unknown="There is no model “{model_id}”. Available: {models}",
    model_current_mark="✅ ",
    new_done="Started a new conversation: I have forgotten the previous one.",
    language_name="English",
    language_name_inline="English",
    language_choose="Choose the language I speak. Now: <b>{language}</b>",
    language_auto="🌐 As in Telegram",
    language_set="I speak English now.",
    language_auto_set="I follow your Telegram language again: {language}.",
    language_unknown="There is no language “{code}”. Available: {codes}",
    model_image_current="Pictures for /image: <b>{model}</b> (🎨 below)",
    model_image_mark="🎨 ",
    model_image_switched="/image now draws with {model}.",
    unsupported=(
        "I can only read text for now. Send me your question as a message; "
        "/help lists what I can do."
    ),
    unsupported_media=(
        "I can't handle this kind of message. I understand {things}; /help lists what I can do."
    ),
    can_text="text",
    can_photos="photos",
    can_voice="voice messages",
    list_and=" and ",
    unknown_command="I don't know the command {command}. /help lists what I can do.",
    image_usage=(
        "Describe the picture after the command, for example: "
        "/image a lighthouse at dawn, watercolour"
    ),
    image_unavailable="No image model is available here, so I can't draw pictures.",
    photo_prompt="Describe this image.",
    photo_no_vision=(
        "{model} can't see images. Models that can: {models}. "
        "Switch with /model and send the photo again."
    ),
    file_too_big="That file is too big for me: the limit is {limit} MB.",
    download_failed="I couldn't get that file from Telegram. Please send it again.",
    voice_too_long=(
        "Your voice message is {duration:#second|seconds} long; I can transcribe up to "
        "{limit:#second|seconds}. Please send a shorter one."
    ),
    voice_transcript="<blockquote>🎙 {text}</blockquote>",
    voice_empty="I couldn't make out any words in that voice message.",
    thinking="Thinking…",
    thought_for="Thought for {seconds} s",
    error_auth="{model} refused our credentials. Please pick another model with /model.",
    error_auth_no_switch="{model} refused our credentials. Please try again later.",
    error_not_found="{model} is not available from its provider. Please pick another with /model.",
    error_not_found_no_switch="{model} is not available from its provider. Please try again later.",
    error_bad_request="{model} could not accept this request. Try rephrasing it.",
    error_context="The conversation is too long for {model}. Send /new to start over.",
    error_rate_limited="{model} is busy right now. Try again in a minute, or pick another /model.",
    error_rate_limited_no_switch="{model} is busy right now. Try again in a minute.",
    error_timeout="{model} took too long to answer. Please try again.",
    error_unavailable="{model} is unavailable right now. Try again later, or pick another /model.",
    error_unavailable_no_switch="{model} is unavailable right now. Try again later.",
    error_unsupported="{model} can't do that. Please pick another model with /model.",
    error_unsupported_no_switch="{model} can't do that.",
    error_generic="Something went wrong with {model}. Please try again.",
    interrupted="(answer interrupted: {reason})",
    shutting_down="the bot was restarting. Please ask again",
    stopped="(stopped: this request still counts toward today's limits)",
    stop_button="⏹ Stop",
    not_your_button="This button belongs to someone else's message.",
    answer_in_file="The answer is too long for messages: the whole of it is in this file.",
    answer_file_name="answer",
    retry_button="🔄 Retry",
    still_answering="I'm still answering your previous message: press Stop (or /stop), or wait.",
    nothing_to_stop="Nothing is being written right now.",
    retry_expired="That request is too old to retry; please send it again.",
    prompt_too_long=(
        "Your message is too long: {length:#character|characters}, the limit is "
        "{limit:#character|characters}."
    ),
    empty_answer="{model} returned an empty answer. Please try again.",
    service_unavailable="The bot is temporarily unavailable. Please try again in a minute.",
    limit_model=(
        "You have used today's {limit:#request|requests} to {model}. It resets at {time} "
        "(in {left}); other models may still answer: /model."
    ),
    limit_model_no_switch=(
        "You have used today's {limit:#request|requests} to {model}. It resets at {time} "
        "(in {left})."
    ),
    limit_overall=(
        "You have used today's free allowance of {limit:#credit|credits}. It resets at {time} "
        "(in {left})."
    ),
    limits_overall="<b>Today:</b> {left} of {limit:#credit|credits} left.",
    limits_no_overall="<b>Today:</b> no overall limit.",
    limits_resets="Limits reset at {time} (in {left}).",
    limits_model="{model}: {cost:#credit|credits} a request",
    limits_model_capped=(
        "{model}: {cost:#credit|credits} a request, {left} of {limit:#request|requests} left"
    ),
    limits_model_blocked="{model}: {cost:#credit|credits} a request, more than you have left today",
    limits_admin="You are an admin: no limits apply to you.",
    compare_choose=(
        "Choose 2 to 4 models for /compare. Now: {models}\n\nThen ask: /compare <question>"
    ),
    compare_toggle_bounds="A comparison takes {low} to {high:#model|models}.",
    compare_need_models="Fewer than two models are available, so there is nothing to compare.",
    compare_skipped=(
        "Skipped, over today's limit: {models}. Limits reset at {time} (in {left}); /limits "
        "shows what is left."
    ),
    compare_footer_time="{seconds:.1f} s",
    compare_footer_tokens="{tokens:#token|tokens}",
    compare_continue="Continue with {model}",
    compare_best="👍 Best",
    compare_continued="Now talking to {model}; the conversation goes on from its answer.",
    compare_expired="This comparison has expired. Ask again with /compare.",
    vote_counted="Vote counted for {model}. See /top.",
    vote_already="You have already voted in this comparison.",
    top_title="<b>Models by votes</b>",
    top_line="{place}. {model}: {votes:#vote|votes}",
    top_empty=(
        "No votes yet: run a blind battle with /arena, or press 👍 Best under a /compare answer."
    ),
    arena_usage=(
        "Reply to this message with your question: two models I pick answer it without "
        "their names, and you vote for the better one."
    ),
    arena_model_a="Model A",
    arena_model_b="Model B",
    arena_revealed="{side}: {model}",
    arena_no_models=(
        "A battle needs two models within your limits today, and fewer are left. "
        "/limits shows what is left."
    ),
    arena_void="One of the models did not answer in full, so this battle has no vote.",
    arena_a_better="👈 A is better",
    arena_b_better="B is better 👉",
    arena_tie="🤝 Tie",
    arena_both_bad="👎 Both bad",
    arena_counted="Thanks: your vote is counted. See /top.",
    arena_named=(
        "Thanks. Not counted in the ratings: {models} named itself in its answer, so the "
        "battle was not blind."
    ),
    arena_over_cap=(
        "Thanks. Only {limit:#vote|votes} a day count in the ratings, and you have "
        "reached that today."
    ),
    arena_already="You have already voted in this battle.",
    arena_not_ready="Wait until both answers are finished, then vote.",
    arena_expired="This battle has expired. Start a new one with /arena.",
    top_arena_title="<b>Arena: ratings from blind battles</b> (95% interval)",
    top_arena_line=("{place}. {model}: {rating} ({low}–{high}), {battles:#battle|battles}"),
    top_provisional_title="<b>Provisional</b> (fewer than {min:#battle|battles})",
    top_arena_empty="No blind battles counted yet: try /arena.",
    top_best_title="<b>👍 Best under /compare</b>",
    merge_button="🔀 Merge",
    merge_with="🔀 Merge with: {model}",
    merge_instruction=(
        "Several assistants answered the question below. Write the one best answer to "
        "it: keep what is right and useful in each, resolve where they disagree, and say "
        "briefly where the sources disagreed. Answer in the question's language, as if "
        "you were answering it yourself.\n\nQuestion:\n{question}\n\n{answers}"
    ),
    merge_answer="Answer from {model}:\n{answer}",
    merge_continued="Merged by {model}. The conversation goes on with it.",
    admin_private_only="Admin commands work in a private chat with me.",
    stats_title="<b>{date}</b>: {users:#user|users}",
    stats_model="{model}: {count:#request|requests}",
    stats_failures="{provider}: {count:#failure|failures}",
    reload_done="The model catalog was reloaded on every replica.",
    reload_refused="The catalog was not reloaded:\n{problem}",
    hours_minutes="{h} h {m} min",
    minutes="{m} min",
    image_edit_usage=(
        "Write what to change after the command, for example: /image make it night "
        "(as the photo's caption, or in reply to the photo)."
    ),
    image_no_edits=(
        "{model} can't edit photos. Models that can: {models}. "
        "Pick one in /model and send /image with the photo again."
    ),
    image_edits_unavailable="No image model here can edit photos.",
    error_declined="{model} declined this request. Try rephrasing it.",
    buy_title=(
        "<b>Buy credits with Telegram Stars</b>\nPaid credits are used once the free "
        "daily allowance runs out; a plan raises the daily allowance for 30 days."
    ),
    buy_pack_button="{title} · {stars} ⭐",
    buy_plan_button="{title}: {limit} credits a day · {stars} ⭐ / 30 days",
    invoice_pack_description="{credits:#paid credit|paid credits} for any model.",
    invoice_plan_description=(
        "A daily allowance of {limit:#credit|credits} for 30 days, renewed monthly."
    ),
    plan_invoice_text="Subscribe to <b>{title}</b>:",
    plan_subscribe_button="⭐ Subscribe",
    checkout_refused="This invoice is no longer valid. Send /buy for a new one.",
    checkout_unavailable="Payments are temporarily unavailable. Please try again in a minute.",
    paid_pack=(
        "Thank you! {credits:#credit|credits} added. Paid balance: {balance:#credit|credits}."
    ),
    paid_plan="Thank you! {title} is active until {date}.",
    paid_problem=(
        "Your payment arrived but could not be matched to a product. Send /paysupport "
        "and we will sort it out."
    ),
    subscription_canceled=(
        "Your subscription is canceled: it stays active until the end of the paid period."
    ),
    subscription_active="Your subscription is active again.",
    subscription_failed="Your subscription could not be renewed. Send /buy to subscribe again.",
    limits_paid="Paid balance: {credits:#credit|credits}.",
    limits_plan="Plan <b>{title}</b>: {limit:#credit|credits} a day, until {date}.",
    paysupport=(
        "Payment questions: reply here describing the problem and your payment date; an "
        "admin will answer. Refunds of unused credits are possible within 14 days."
    ),
    terms_default=(
        "Credits are bought with Telegram Stars and used for requests to the models "
        "here. Unused credits of a pack can be refunded on request (/paysupport). Plans "
        "renew every 30 days until canceled."
    ),
    refund_usage="Usage: /refund <user id> <charge id>",
    refund_done=(
        "Refunded. {removed:#credit|credits} taken back; {spent:#credit|credits} had been spent."
    ),
    refund_unknown="No such payment of that user.",
    refund_already="That payment was refunded already.",
    refund_refused="Telegram refused the refund: {problem}",
    stats_payments="Stars received: {stars}; paid credits spent: {spent}",
    buy_command="buy credits with Telegram Stars",
)
