"""Handlers of the Wesog API routes: images, search and operations."""

from __future__ import annotations

import asyncio
import itertools

from aiohttp import web

from wesog_async.emulator import faults
from wesog_async.emulator.http import detail, json_response, state_of, tenant_of
from wesog_async.emulator.operations import NO_FIELDS, ItemKind, Items, Operation
from wesog_async.emulator.query import FormulaError, compile_formula
from wesog_async.emulator.search import (
    FACETS,
    SEARCH_LANGS,
    SORT_BY,
    SORT_ORDERS,
    SearchParams,
    project,
    search,
)
from wesog_async.emulator.store import IMAGE_FIELDS
from wesog_async.emulator.validation import (
    WRITE_LANGS,
    Errors,
    RequestValidationError,
    batch,
    clean_fields,
    delete_ids,
    image_fields,
    parse_json,
    query_bool,
    query_enum,
    query_enum_list,
    query_int,
)

_KIND_BY_METHOD: dict[str, ItemKind] = {
    "POST": "add",
    "PUT": "put",
    "PATCH": "patch",
    "DELETE": "del",
}


# -- writes ----------------------------------------------------------------------
async def _items(request: web.Request, errors: Errors, kind: ItemKind) -> Items:
    """Validate the body of a write into work items (errors collected)."""
    items = Items()
    image_id = request.match_info.get("image_id")
    if kind == "del" and image_id is not None:
        items.append(image_id, NO_FIELDS)
        return items
    body = parse_json(errors, await request.read())
    need_src = kind in ("add", "put")
    if image_id is not None:
        _, fields = image_fields(errors, body, ("body",), need_id=False, need_src=need_src)
        items.append(image_id, fields)
        return items
    elements = batch(errors, body, state_of(request).config.max_batch_items)
    if kind == "del":
        items.ids = delete_ids(errors, elements)
        items.fields = [NO_FIELDS] * len(items.ids)
        return items
    add_id, add_fields = items.ids.append, items.fields.append
    for index, element in enumerate(elements):
        if type(element) is dict:
            item_id = element.get("id")
            if type(item_id) is str and item_id:
                clean = clean_fields(element, need_src=need_src)
                if clean is not None:
                    add_id(item_id)
                    add_fields(clean)
                    continue
        # Something is wrong with this element: the full check names it.
        item_id, fields = image_fields(
            errors, element, ("body", index), need_id=True, need_src=need_src
        )
        if item_id is not None:
            add_id(item_id)
            add_fields(fields)
    return items


async def _wait(op: Operation, closing: asyncio.Event) -> bool:
    """Wait until ``op`` is done; ``False`` if the emulator shuts down first."""
    if op.done.is_set():
        return True
    done = asyncio.ensure_future(op.done.wait())
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((done, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        done.cancel()
        stop.cancel()
    return op.done.is_set()


async def write(request: web.Request) -> web.StreamResponse:
    """POST/PUT/PATCH/DELETE on ``/imgs`` and ``/imgs/{image_id}`` (D1, D2)."""
    state, tenant = state_of(request), tenant_of(request)
    kind = _KIND_BY_METHOD[request.method]
    errors = Errors()
    query = request.query
    wait = query_bool(errors, query, "wait", False)
    urgent = query_bool(errors, query, "urgent", False)
    strict = query_bool(errors, query, "strict", False)
    if kind != "del":
        query_enum(errors, query, "lang", WRITE_LANGS, "es")
    items = await _items(request, errors, kind)
    errors.raise_if_any()
    op = state.submit(tenant, kind, items, wait=wait, urgent=urgent, strict=strict)
    faults.mark_operation(op)
    if not wait:
        return json_response(op.to_json(), 202)
    if not await _wait(op, state.closing):
        return detail(503, "emulator shutting down")
    return json_response(op.to_json(), 200)


# -- reads -------------------------------------------------------------------------
def _fields(errors: Errors, request: web.Request) -> tuple[str, ...]:
    return tuple(
        query_enum_list(errors, request.query.getall("fields", []), "fields", IMAGE_FIELDS)
    )


async def get_image(request: web.Request) -> web.StreamResponse:
    """``GET /imgs/{image_id}`` with optional ``fields`` projection."""
    tenant = tenant_of(request)
    errors = Errors()
    fields = _fields(errors, request)
    errors.raise_if_any()
    doc = tenant.store.get(request.match_info["image_id"])
    if doc is None:
        return detail(404, "Image not found")
    return json_response(project(doc, fields))


async def search_images(request: web.Request) -> web.StreamResponse:
    """``GET /imgs``: the formula, sorting, paging, count, facets (§3.1, D20)."""
    tenant = tenant_of(request)
    errors = Errors()
    q = request.query
    page = query_int(errors, q, "page", 1, ge=1)
    limit = query_int(errors, q, "limit", 50, ge=1, le=10000)
    sort_by = query_enum(errors, q, "sort_by", SORT_BY, "") or ""
    sort_order = query_enum(errors, q, "sort_order", SORT_ORDERS, None)
    query_enum(errors, q, "lang", SEARCH_LANGS, "ml")
    count = query_bool(errors, q, "count", False)
    fields = _fields(errors, request)
    facets = tuple(query_enum_list(errors, q.getall("facets", []), "facets", FACETS))
    formula = q.get("q", "")
    try:
        compiled = compile_formula(formula, tenant.store)
    except FormulaError as exc:
        errors.add("value_error", ("query", "q"), f"Value error, {exc}", formula, position=exc.pos)
        raise RequestValidationError(errors.items) from None
    if sort_by in ("similarity", "sim") and not compiled.has_similarity:
        errors.add(
            "value_error",
            ("query", "sort_by"),
            "Value error, sort_by=similarity needs a similarity (~) filter in q",
            sort_by,
        )
    errors.raise_if_any()
    params = SearchParams(
        query=compiled,
        sort_by=sort_by,
        sort_order=sort_order,
        page=page,
        limit=limit,
        fields=fields,
        facets=facets,
        count=count,
    )
    return json_response(search(tenant.store, params))


# -- operations ----------------------------------------------------------------------
def _op(request: web.Request) -> Operation | None:
    """The caller's operation named in the path (``None`` if unknown or foreign)."""
    raw = request.match_info["op_id"]
    try:
        op_id = int(raw)
    except ValueError:
        errors = Errors()
        errors.add(
            "int_parsing",
            ("path", "op_id"),
            "Input should be a valid integer, unable to parse string as an integer",
            raw,
        )
        raise RequestValidationError(errors.items) from None
    op = tenant_of(request).ops.get(op_id)
    return None if op is None or op.vanished else op


async def get_op(request: web.Request) -> web.StreamResponse:
    op = _op(request)
    if op is None:
        return detail(404, "Operation not found")
    return json_response(op.to_json())


async def cancel_op(request: web.Request) -> web.StreamResponse:
    """D13: cancel while queued (200), 409 once started, 404 if unknown."""
    op = _op(request)
    if op is None:
        return detail(404, "Operation not found")
    if not state_of(request).cancel(tenant_of(request), op):
        return detail(409, f"Operation {op.op_id} has already started and cannot be cancelled")
    return json_response(op.to_json())


async def list_ops(request: web.Request) -> web.StreamResponse:
    """D12: the tenant's operations, newest first, ``limit``/``page``."""
    tenant = tenant_of(request)
    errors = Errors()
    limit = query_int(errors, request.query, "limit", 100, ge=1, le=10000)
    page = query_int(errors, request.query, "page", 1, ge=1)
    errors.raise_if_any()
    newest_first = (op for op in reversed(tenant.ops.values()) if not op.vanished)
    offset = (page - 1) * limit
    return json_response(
        [op.to_json() for op in itertools.islice(newest_first, offset, offset + limit)]
    )
