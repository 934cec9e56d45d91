"""``POST /tag/image`` (Wesog Tag): deterministic tags from the image bytes.

The response shape is not documented; the emulator answers 200 with
``{"lang", "mode", "tags", "keywords", "caption", "ocr", "colors"}``, where the
optional outputs are ``null`` unless their flag was set.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from aiohttp import web

from wesog_async.emulator.http import json_response
from wesog_async.emulator.validation import (
    WRITE_LANGS,
    Errors,
    add_enum_error,
    query_bool,
)

MODES: Final = ("editorial", "standard")
_BOOL_FLAGS: Final = ("caption", "keywords", "ocr", "colors")
_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("tree", "dog", "ball", "water", "city", "sky", "person", "car", "sunset", "beach",
           "mountain", "street", "portrait", "food", "flower", "night"),
    "es": ("árbol", "perro", "pelota", "agua", "ciudad", "cielo", "persona", "coche",
           "atardecer", "playa", "montaña", "calle", "retrato", "comida", "flor", "noche"),
    "pt": ("árvore", "cão", "bola", "água", "cidade", "céu", "pessoa", "carro", "pôr do sol",
           "praia", "montanha", "rua", "retrato", "comida", "flor", "noite"),
    "fr": ("arbre", "chien", "balle", "eau", "ville", "ciel", "personne", "voiture",
           "coucher de soleil", "plage", "montagne", "rue", "portrait", "nourriture", "fleur",
           "nuit"),
    "ru": ("дерево", "собака", "мяч", "вода", "город", "небо", "человек", "машина", "закат",
           "пляж", "гора", "улица", "портрет", "еда", "цветок", "ночь"),  # noqa: RUF001 - Cyrillic on purpose
}  # fmt: skip


def tags_for(data: bytes, lang: str, count: int = 5) -> list[str]:
    """``count`` distinct words chosen by the image's hash: same bytes, same tags."""
    words = _WORDS[lang]
    digest = hashlib.sha256(data).digest()
    chosen: list[str] = []
    for byte in digest:
        word = words[byte % len(words)]
        if word not in chosen:
            chosen.append(word)
        if len(chosen) == count:
            break
    return chosen


async def tag_image(request: web.Request) -> web.StreamResponse:
    """Validate the multipart form and answer with deterministic tags."""
    form = await request.post()
    errors = Errors()
    image = form.get("image")
    if image is None:
        errors.add("missing", ("body", "image"), "Field required", None)
    elif not isinstance(image, web.FileField):
        errors.add("value_error", ("body", "image"), "Expected UploadFile, received: str", None)
    lang = str(form.get("lang", "en"))
    if lang not in WRITE_LANGS:
        add_enum_error(errors, ("body", "lang"), WRITE_LANGS, lang)
    mode = form.get("mode")
    if mode is not None and mode not in MODES:
        add_enum_error(errors, ("body", "mode"), MODES, str(mode))
    text_form = {k: v for k, v in form.items() if isinstance(v, str)}
    flags = {name: query_bool(errors, text_form, name, False) for name in _BOOL_FLAGS}
    for error in errors.items:  # form fields live in the body, not the query
        if error["loc"][0] == "query":
            error["loc"][0] = "body"
    errors.raise_if_any()
    assert isinstance(image, web.FileField)  # narrowed by the checks above
    data = image.file.read()
    digest = hashlib.sha256(data).hexdigest()
    context = " ".join(str(form[k]) for k in ("event", "city", "country") if form.get(k))
    words = tags_for(data, lang)
    result: dict[str, Any] = {
        "lang": lang,
        "mode": mode,
        "tags": words,
        "keywords": (
            list(dict.fromkeys(words + tags_for(data[::-1], lang, 3)))
            if flags["keywords"]
            else None
        ),
        "caption": (f"{words[0]} and {words[1]} {context}".strip() if flags["caption"] else None),
        "ocr": digest[:12].upper() if flags["ocr"] else None,
        "colors": [f"#{digest[i : i + 6]}" for i in (0, 6, 12)] if flags["colors"] else None,
    }
    return json_response(result)
