"""
Faithful port of how Dify 1.14.1 calls an API-based custom tool (an OpenAPI operation imported with
dify_parser.py) and of what the LLM then sees.

Source of truth: langgenius/dify 1.14.1, commit bb73776339b1af45be0d1f1a4d39ff5ee916a7e4
(identical for these files at the 1.14.0 bump 6fafeec415; message_transformer.py only refactored).

Call chain in an Agent / Agent-chat app (function calling):
  core/agent/fc_agent_runner.py         args = json.loads(tool_call.function.arguments)  -> dict
  core/tools/tool_engine.py             ToolEngine.agent_invoke -> ToolEngine._invoke
  core/tools/__base/tool.py             Tool.invoke -> _transform_tool_parameters_type (cast per ToolParameter)
  core/tools/custom_tool/tool.py        ApiTool._invoke -> assembling_request -> do_http_request
                                        -> validate_and_parse_response -> JSON + TEXT messages
  core/helper/ssrf_proxy.py             make_request(..., max_retries=0)  (httpx 0.28.1 client)
  core/tools/utils/message_transformer.py  JSON objects through safe_json_value
  core/tools/tool_engine.py             _convert_tool_response_to_str  -> the string the LLM gets
  (errors)                              agent_invoke -> "tool invoke error: <str(exc)>"

Ported as pure functions (stdlib only + dify_parser's pydantic entities):
  build_request(bundle, credentials, args) -> DifyRequest (method, url, headers, body bytes, params, ...)
  llm_view(status, response_text, ...)      -> str the LLM sees (errors included, as Dify renders them)
  llm_tool_schema(bundle)                   -> the function/tool JSON schema the LLM is given
"""

from __future__ import annotations

import json
import os
import re
import uuid
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.contracts.dify.parser import ApiToolBundle, PluginParameterType, ToolParameter, as_normal_type


# ============================================================================================
# core/tools/errors.py (all ValueError subclasses) + ssrf_proxy.MaxRetriesExceededError(ValueError)
# ============================================================================================
class ToolParameterValidationError(ValueError):
    pass


class ToolProviderCredentialValidationError(ValueError):
    pass


class ToolInvokeError(ValueError):
    pass


class ToolSSRFError(ValueError):
    pass


class MaxRetriesExceededError(ValueError):
    pass


# ============================================================================================
# core/plugin/entities/parameters.py  cast_parameter_value   (ToolParameterType.cast_value)
# ============================================================================================
def cast_parameter_value(typ, value: Any, /):
    try:
        match typ.value:
            case (
                PluginParameterType.STRING
                | PluginParameterType.SECRET_INPUT
                | PluginParameterType.SELECT
                | PluginParameterType.CHECKBOX
                | PluginParameterType.DYNAMIC_SELECT
            ):
                if value is None:
                    return ""
                else:
                    # dict/list from the LLM -> Python repr, e.g. "{'a': 1}" (NOT JSON)
                    return value if isinstance(value, str) else str(value)

            case PluginParameterType.BOOLEAN:
                if value is None:
                    return False
                elif isinstance(value, str):
                    match value.lower():
                        case "true" | "yes" | "y" | "1":
                            return True
                        case "false" | "no" | "n" | "0":
                            return False
                        case _:
                            return bool(value)
                else:
                    return value if isinstance(value, bool) else bool(value)

            case PluginParameterType.NUMBER:
                if isinstance(value, int | float):
                    return value
                elif isinstance(value, str) and value:
                    if "." in value:
                        return float(value)
                    else:
                        return int(value)
                # None, "" , list, dict ... fall through -> returns None
            case PluginParameterType.SYSTEM_FILES | PluginParameterType.FILES:
                if not isinstance(value, list):
                    return [value]
                return value
            case PluginParameterType.FILE:
                if isinstance(value, list):
                    if len(value) != 1:
                        raise ValueError("This parameter only accepts one file but got multiple files while invoking.")
                    else:
                        return value[0]
                return value
            case PluginParameterType.MODEL_SELECTOR | PluginParameterType.APP_SELECTOR:
                if not isinstance(value, dict):
                    raise ValueError("The selector must be a dictionary.")
                return value
            case PluginParameterType.TOOLS_SELECTOR:
                if value and not isinstance(value, list):
                    raise ValueError("The tools selector must be a list.")
                return value
            case PluginParameterType.ANY:
                if value and not isinstance(value, str | dict | list | int | float):
                    raise ValueError("The var selector must be a string, dictionary, list or number.")
                return value
            case PluginParameterType.ARRAY:
                if not isinstance(value, list):
                    if isinstance(value, str):
                        try:
                            parsed_value = json.loads(value)
                            if isinstance(parsed_value, list):
                                return parsed_value
                        except (json.JSONDecodeError, ValueError):
                            pass
                    return [value]
                return value
            case PluginParameterType.OBJECT:
                if not isinstance(value, dict):
                    if isinstance(value, str):
                        try:
                            parsed_value = json.loads(value)
                            if isinstance(parsed_value, dict):
                                return parsed_value
                        except (json.JSONDecodeError, ValueError):
                            pass
                    return {}
                return value
            case _:
                return str(value)
    except ValueError:
        raise  # e.g. int("abc") -> "invalid literal for int() with base 10: 'abc'"
    except Exception:
        raise ValueError(f"The tool parameter value {repr(value)} is not in correct type of {as_normal_type(typ)}.")


# ============================================================================================
# core/tools/tool_engine.py  ToolEngine.agent_invoke  (string-argument handling)
# ============================================================================================
def agent_args(bundle: ApiToolBundle, tool_parameters: str | dict[str, Any]) -> dict[str, Any]:
    """If the model's arguments arrive as a str: one LLM param -> {that_param: str}; else json.loads."""
    if isinstance(tool_parameters, str):
        parameters = [p for p in (bundle.parameters or []) if p.form == ToolParameter.ToolParameterForm.LLM]
        if parameters and len(parameters) == 1:
            tool_parameters = {parameters[0].name: tool_parameters}
        else:
            try:
                tool_parameters = json.loads(tool_parameters)
            except Exception:
                pass
            if not isinstance(tool_parameters, dict):
                raise ValueError(f"tool_parameters should be a dict, but got a string: {tool_parameters}")
    return tool_parameters


# ============================================================================================
# core/tools/__base/tool.py  Tool._transform_tool_parameters_type
# ============================================================================================
def transform_tool_parameters_type(bundle: ApiToolBundle, tool_parameters: dict[str, Any]) -> dict[str, Any]:
    result = deepcopy(tool_parameters)
    # entity.parameters == bundle.parameters (custom_tool/provider.py _parse_tool_bundle).
    # Duplicated names: the LAST ToolParameter with that name decides the cast.
    for parameter in bundle.parameters or []:
        if parameter.name in tool_parameters:
            result[parameter.name] = cast_parameter_value(parameter.type, tool_parameters[parameter.name])
    return result


# ============================================================================================
# core/tools/custom_tool/tool.py  ApiTool.assembling_request
# ============================================================================================
def assembling_request(bundle: ApiToolBundle, credentials: dict[str, Any] | None, parameters: dict[str, Any]):
    headers: dict[str, Any] = {}
    credentials = credentials or {}  # == self.runtime.credentials  (SAME dict object -> mutated below!)
    if "auth_type" not in credentials:
        raise ToolProviderCredentialValidationError("Missing auth_type")

    if credentials["auth_type"] in ("api_key_header", "api_key"):  # backward compatibility:
        api_key_header = "Authorization"

        if "api_key_header" in credentials:
            api_key_header = credentials["api_key_header"]

        if "api_key_value" not in credentials:
            raise ToolProviderCredentialValidationError("Missing api_key_value")
        elif not isinstance(credentials["api_key_value"], str):
            raise ToolProviderCredentialValidationError("api_key_value must be a string")

        if "api_key_header_prefix" in credentials:
            api_key_header_prefix = credentials["api_key_header_prefix"]
            # NOTE: writes the prefixed value back into the runtime credentials dict.  An agent run
            # re-uses one tool runtime for every iteration, so a 2nd call in the same run sends
            # "Bearer Bearer <key>" / "Basic Basic <key>".
            if api_key_header_prefix == "basic" and credentials["api_key_value"]:
                credentials["api_key_value"] = f"Basic {credentials['api_key_value']}"
            elif api_key_header_prefix == "bearer" and credentials["api_key_value"]:
                credentials["api_key_value"] = f"Bearer {credentials['api_key_value']}"
            elif api_key_header_prefix == "custom":
                pass

        headers[api_key_header] = credentials["api_key_value"]

    elif credentials["auth_type"] == "api_key_query":
        pass  # added as a query parameter in do_http_request

    needed_parameters = [parameter for parameter in (bundle.parameters or []) if parameter.required]
    for parameter in needed_parameters:
        if parameter.required and parameter.name not in parameters:
            if parameter.default is not None:
                parameters[parameter.name] = parameter.default
            else:
                raise ToolParameterValidationError(f"Missing required parameter {parameter.name}")

    return headers


# ============================================================================================
# core/tools/custom_tool/tool.py  ApiTool.get_parameter_value / _convert_body_property_* / do_http_request
# ============================================================================================
def get_parameter_value(parameter, parameters):
    if parameter["name"] in parameters:
        return parameters[parameter["name"]]
    elif parameter.get("required", False):
        raise ToolParameterValidationError(f"Missing required parameter {parameter['name']}")
    else:
        return (parameter.get("schema", {}) or {}).get("default", "")


def _convert_body_property_any_of(property, value, any_of, max_recursive=10):
    if max_recursive <= 0:
        raise Exception("Max recursion depth reached")
    for option in any_of or []:
        try:
            if "type" in option:
                if option["type"] == "integer" or option["type"] == "int":
                    return int(value)
                elif option["type"] == "number":
                    if "." in str(value):
                        return float(value)
                    else:
                        return int(value)
                elif option["type"] == "string":
                    return str(value)
                elif option["type"] == "boolean":
                    if str(value).lower() in {"true", "1"}:
                        return True
                    elif str(value).lower() in {"false", "0"}:
                        return False
                    else:
                        continue
                elif option["type"] == "null" and not value:
                    return None
                else:
                    continue
            elif "anyOf" in option and isinstance(option["anyOf"], list):
                return _convert_body_property_any_of(property, value, option["anyOf"], max_recursive - 1)
        except ValueError:
            continue
    return value


def _convert_body_property_type(property, value):
    try:
        if "type" in property:
            if property["type"] == "integer" or property["type"] == "int":
                return int(value)  # int(None) -> TypeError, NOT caught -> tool invoke error
            elif property["type"] == "number":
                if "." in str(value):
                    return float(value)
                else:
                    return int(value)
            elif property["type"] == "string":
                return str(value)  # dict -> "{'a': 1}", None -> "None", True -> "True"
            elif property["type"] == "boolean":
                return bool(value)  # bool("false") is True !
            elif property["type"] == "null":
                if value is None:
                    return None
            elif property["type"] == "object" or property["type"] == "array":
                if isinstance(value, str):
                    try:
                        return json.loads(value)
                    except ValueError:
                        return value
                elif isinstance(value, dict):
                    return value
                else:
                    return value
            else:
                raise ValueError(f"Invalid type {property['type']} for property {property}")
        elif "anyOf" in property and isinstance(property["anyOf"], list):
            return _convert_body_property_any_of(property, value, property["anyOf"])
        # no "type" and no "anyOf" (e.g. only enum/oneOf/allOf/description) -> implicit None -> JSON null
    except ValueError:
        return value


API_TOOL_DEFAULT_TIMEOUT = (
    int(os.getenv("API_TOOL_DEFAULT_CONNECT_TIMEOUT", "10")),
    int(os.getenv("API_TOOL_DEFAULT_READ_TIMEOUT", "60")),
)


def do_http_request_kwargs(
    bundle: ApiToolBundle, credentials: dict[str, Any] | None, headers: dict[str, Any], parameters: dict[str, Any]
) -> dict[str, Any]:
    """ApiTool.do_http_request up to (not including) the ssrf_proxy call; returns its kwargs."""
    url = bundle.server_url
    method = bundle.method.lower()

    params: dict[str, Any] = {}
    path_params: dict[str, Any] = {}
    body: Any = {}
    cookies: dict[str, Any] = {}
    files: list = []

    if credentials:
        if credentials.get("auth_type") == "api_key_query":
            api_key_query_param = credentials.get("api_key_query_param", "key")
            api_key_value = credentials.get("api_key_value")
            if api_key_value:
                params[api_key_query_param] = api_key_value

    for parameter in bundle.openapi.get("parameters", []):
        value = get_parameter_value(parameter, parameters)
        if parameter["in"] == "path":
            path_params[parameter["name"]] = value
        elif parameter["in"] == "query":
            if value != "":
                params[parameter["name"]] = value
        elif parameter["in"] == "cookie":
            cookies[parameter["name"]] = value
        elif parameter["in"] == "header":
            headers[parameter["name"]] = str(value)

    if "requestBody" in bundle.openapi and bundle.openapi["requestBody"] is not None:
        if "content" in bundle.openapi["requestBody"]:
            for content_type in bundle.openapi["requestBody"]["content"]:
                headers["Content-Type"] = content_type
                body_schema = bundle.openapi["requestBody"]["content"][content_type]["schema"]  # KeyError if none

                if "$ref" in body_schema:
                    ref_path = body_schema["$ref"].split("/")
                    ref_name = ref_path[-1]
                    if "components" in bundle.openapi and "schemas" in bundle.openapi["components"]:
                        if ref_name in bundle.openapi["components"]["schemas"]:
                            body_schema = bundle.openapi["components"]["schemas"][ref_name]

                required = body_schema.get("required", [])
                properties = body_schema.get("properties", {})
                for name, property in properties.items():
                    if name in parameters:
                        if property.get("type") == "array" and property.get("items", {}).get("format") == "binary":
                            for f in parameters[name]:
                                files.append((name, ("<file>", b"<download(f)>", "<mime>")))
                        elif property.get("format") == "binary":
                            files.append((name, ("<file>", b"<download(f)>", "<mime>")))
                        elif "$ref" in property:
                            body[name] = parameters[name]
                        else:
                            body[name] = _convert_body_property_type(property, parameters[name])
                    elif name in required:
                        raise ToolParameterValidationError(
                            f"Missing required parameter {name} in operation {bundle.operation_id}"
                        )
                    elif "default" in property:
                        body[name] = property["default"]
                    else:
                        pass  # optional & not provided -> omitted
                break  # ONLY the first content type is used

    for name, value in path_params.items():
        url = url.replace(f"{{{name}}}", f"{value}")  # raw str(), no percent-encoding by Dify

    if "Content-Type" in headers:
        if headers["Content-Type"] == "application/json":  # exact match only!
            body = json.dumps(body)  # default ensure_ascii=True, separators (", ", ": ")
        elif headers["Content-Type"] == "application/x-www-form-urlencoded":
            body = urlencode(body)  # urllib: True -> "True", None -> "None", dict -> repr
        else:
            body = body  # stays a dict -> httpx form-urlencodes it (see _httpx_encode)

    if files:
        headers.pop("Content-Type", None)

    if method not in {"get", "head", "post", "put", "delete", "patch"}:
        raise ValueError(f"Invalid http method {method}")

    return dict(
        method=method.upper(),
        url=url,
        max_retries=0,
        params=params,
        headers=headers,
        cookies=cookies,
        data=body,
        files=files,
        timeout=API_TOOL_DEFAULT_TIMEOUT,
        follow_redirects=True,
    )


# ============================================================================================
# httpx 0.28.1 request encoding (what actually goes on the wire) + ssrf_proxy.make_request headers
# ============================================================================================
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PATH_SAFE = "".join(
    chr(i) for i in range(0x20, 0x7F) if i not in (0x20, 0x22, 0x23, 0x3C, 0x3E) + (0x3F, 0x60, 0x7B, 0x7D)
)
_PCT = re.compile("%[A-Fa-f0-9]{2}")


def _httpx_quote(s: str, safe: str) -> str:  # httpx/_urlparse.py quote()
    ok = _UNRESERVED + safe

    def enc(t):
        return "".join(c if c in ok else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in t)

    out, pos = [], 0
    for m in _PCT.finditer(s):
        out.append(enc(s[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(enc(s[pos:]))
    return "".join(out)


def _primitive_value_to_str(value) -> str:  # httpx/_utils.py
    if value is True:
        return "true"
    elif value is False:
        return "false"
    elif value is None:
        return ""
    return str(value)


def _multi_items(d: dict[str, Any]) -> list[tuple[str, str]]:  # httpx QueryParams / encode_urlencoded_data
    items = []
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            items.extend((k, _primitive_value_to_str(i)) for i in v)
        else:
            items.append((k, _primitive_value_to_str(v)))
    return items


def _httpx_encode(kw: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """Emulates ssrf_proxy.make_request + httpx.Client.request for Dify's kwargs."""
    # ssrf_proxy: headers must validate as dict[str, str] (else ValueError "headers must be a mapping of
    # string keys to string values"), then a W3C traceparent is injected when ENABLE_OTEL is false.
    for k, v in kw["headers"].items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError("headers must be a mapping of string keys to string values")
    headers = dict(kw["headers"])
    if not any(k.lower() == "traceparent" for k in headers):
        headers["traceparent"] = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    # URL: httpx percent-encodes the path (keeps '/', existing %XX), merges params into the query.
    parts = urlsplit(kw["url"])
    path = _httpx_quote(parts.path, _PATH_SAFE)
    query_items = parse_qsl(parts.query, keep_blank_values=True) if parts.query else []
    if kw["params"]:
        new = _multi_items(kw["params"])
        new_keys = {k for k, _ in new}
        query_items = [(k, v) for k, v in query_items if k not in new_keys] + new
    url = f"{parts.scheme}://{parts.netloc}{path}"
    if query_items:
        url += "?" + urlencode(query_items)

    # body (httpx/_content.py encode_request)
    data = kw["data"]
    if data is not None and not isinstance(data, dict):
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)  # str -> utf-8 bytes
    elif kw["files"]:
        body = b"<multipart/form-data>"
    elif data:
        body = urlencode(_multi_items(data), doseq=True).encode("utf-8")
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # setdefault: caller's wins
    else:
        body = b""
    wire = {
        "Host": parts.netloc,
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate, br, zstd",  # br/zstd because brotli+zstandard are in Dify's uv.lock
        "Connection": "keep-alive",
        "User-Agent": "python-httpx/0.28.1",
    }
    if body or kw["method"] in ("POST", "PUT", "PATCH"):
        wire["Content-Length"] = str(len(body))
    for k, v in headers.items():  # user headers override httpx defaults (case-insensitively)
        for dk in list(wire):
            if dk.lower() == k.lower():
                del wire[dk]
        wire[k] = v
    if kw["cookies"]:
        wire["Cookie"] = "; ".join(f"{k}={v}" for k, v in kw["cookies"].items())
    return url, wire, body


@dataclass
class DifyRequest:
    method: str
    url: str  # final URL as httpx sends it (path quoted, query appended)
    headers: dict[str, str]  # on-the-wire headers (incl. httpx defaults, traceparent)
    body: bytes
    raw_url: str  # URL string Dify passes to httpx (path params substituted, no query)
    params: dict[str, Any] = field(default_factory=dict)
    cookies: dict[str, Any] = field(default_factory=dict)
    data: Any = None  # what Dify passed as data= (str for JSON, dict otherwise)
    casted_args: dict[str, Any] = field(default_factory=dict)
    timeout: tuple[int, int] = API_TOOL_DEFAULT_TIMEOUT
    follow_redirects: bool = True
    max_retries: int = 0


def build_request(bundle: ApiToolBundle, credentials: dict[str, Any], args: dict[str, Any] | str) -> DifyRequest:
    """Tool.invoke -> ApiTool._invoke -> assembling_request -> do_http_request, without the network.

    `credentials` is used as Dify's runtime.credentials (mutated in place by the prefix logic!).
    Raises the same exceptions Dify raises (ToolParameterValidationError, ValueError, TypeError...).
    """
    args = agent_args(bundle, args)
    parameters = transform_tool_parameters_type(bundle, args)
    headers = assembling_request(bundle, credentials, parameters)
    kw = do_http_request_kwargs(bundle, credentials, headers, parameters)
    url, wire_headers, body = _httpx_encode(kw)
    return DifyRequest(
        method=kw["method"],
        url=url,
        headers=wire_headers,
        body=body,
        raw_url=kw["url"],
        params=kw["params"],
        cookies=kw["cookies"],
        data=kw["data"],
        casted_args=parameters,
    )


# ============================================================================================
# Response side
#   ssrf_proxy.make_request (max_retries=0)  -> custom_tool/tool.py validate_and_parse_response / _invoke
#   -> message_transformer.safe_json_value -> tool_engine._convert_tool_response_to_str
#   errors -> tool_engine.agent_invoke: "tool invoke error: {meta.error}"  (meta.error = str(exc))
# ============================================================================================
STATUS_FORCELIST = [429, 500, 502, 503, 504]


def tool_messages(status: int, body: bytes | str, content_type: str = "application/json", url: str = "",
                  response_headers: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    """Returns Dify's ToolInvokeMessages as [("json", obj) | ("text", str)], or raises Dify's exception."""
    response_headers = {k.lower(): v for k, v in (response_headers or {}).items()}
    raw = body.encode("utf-8") if isinstance(body, str) else body
    text = body if isinstance(body, str) else raw.decode("utf-8", "replace")  # httpx 0.28 default utf-8

    # ssrf_proxy.make_request
    if status in (401, 403):
        server_header = response_headers.get("server", "").lower()
        via_header = response_headers.get("via", "").lower()
        if "squid" in server_header or "squid" in via_header:
            raise ToolSSRFError(
                f"Access to '{url}' was blocked by SSRF protection. "
                f"The URL may point to a private or local network address. "
            )
    if status in STATUS_FORCELIST:
        # max_retries=0: one attempt, no sleep, then:
        raise MaxRetriesExceededError(f"Reached maximum retries (0) for URL {url}")

    # ApiTool.validate_and_parse_response
    if status >= 400:
        raise ToolInvokeError(f"Request failed with status code {status} and {text}")
    if not raw:
        return [("text", "Empty response from the tool, please check your parameters and try again.")]
    is_json_content_type = "application/json" in content_type.lower()
    try:
        json_response = json.loads(raw)  # httpx Response.json() == json.loads(content)
        if is_json_content_type:
            content, is_json = json_response, True
        else:
            content, is_json = text, False
    except Exception:
        content, is_json = text, False

    # ApiTool._invoke
    if is_json:
        msgs: list[tuple[str, Any]] = []
        if isinstance(content, dict):
            msgs.append(("json", content))  # only dicts; top-level arrays/scalars get no JSON message
        msgs.append(("text", text))  # "must be preserved to keep backward compatibility"
        return msgs
    return [("text", content if isinstance(content, str) else str(content))]


def convert_tool_response_to_str(messages: list[tuple[str, Any]]) -> str:
    """tool_engine.py ToolEngine._convert_tool_response_to_str (TEXT and JSON branches)."""
    parts: list[str] = []
    json_parts: list[str] = []
    for kind, payload in messages:
        if kind == "text":
            parts.append(payload)
        elif kind == "json":
            json_parts.append(json.dumps(payload, ensure_ascii=False))  # after safe_json_value (no-op for JSON)
    if json_parts:
        existing_parts = set(parts)
        parts.extend(p for p in json_parts if p not in existing_parts)
    return "".join(parts)  # NO separator between raw text and the re-dumped JSON


def llm_view(status: int, response_text: bytes | str, content_type: str = "application/json", url: str = "",
             response_headers: dict[str, str] | None = None) -> str:
    """What the agent's LLM receives as the tool result (ToolEngine.agent_invoke)."""
    try:
        return convert_tool_response_to_str(tool_messages(status, response_text, content_type, url, response_headers))
    except Exception as e:  # ToolEngine._invoke wraps everything in ToolEngineInvokeError(meta.error=str(e))
        return f"tool invoke error: {e}"


def llm_error_view(exc: BaseException) -> str:
    """Same rendering for request-side failures (missing params, httpx ConnectError/timeout, ...)."""
    return f"tool invoke error: {exc}"


def llm_tool_schema(bundle: ApiToolBundle) -> dict[str, Any]:
    """core/agent/base_agent_runner.py _convert_tool_to_prompt_message_tool for an API tool."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in bundle.parameters or []:
        if p.form != ToolParameter.ToolParameterForm.LLM:
            continue
        if p.type in {
            ToolParameter.ToolParameterType.SYSTEM_FILES,
            ToolParameter.ToolParameterType.FILE,
            ToolParameter.ToolParameterType.FILES,
        }:
            continue
        # input_schema is None for API tools -> no items/enum/nested properties reach the LLM
        props[p.name] = {"type": p.type.as_normal_type(), "description": p.llm_description or ""}
        if p.required:
            required.append(p.name)  # (a duplicated required name is appended twice)
    return {
        "name": bundle.operation_id,
        "description": bundle.summary or "",
        "parameters": {"type": "object", "properties": props, "required": required},
    }


