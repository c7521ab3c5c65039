"""
Faithful, self-contained port of Dify's OpenAPI -> "API-based custom tool" parser.

Source of truth: langgenius/dify at version 1.14.1
  commit bb73776339b1af45be0d1f1a4d39ff5ee916a7e4 ("chore(release): bump version to 1.14.1 (#36034)",
  2026-05-12).  The same files are byte-identical at the 1.14.0 bump (6fafeec415) for
  parser.py / tool_bundle.py / parameters.py / api_tools_manage_service.py.
  (Read from the fork snapshot EvelynKirana/dify, which carries upstream main up to that commit
  with no changes under api/.)

Ported pieces (each function below cites the Dify file + function it mirrors):
  * api/core/tools/utils/parser.py            ApiBasedToolSchemaParser (all parse_* functions)
  * api/core/tools/entities/tool_bundle.py    ApiToolBundle
  * api/core/tools/entities/tool_entities.py  ToolParameter, ApiProviderSchemaType, ApiProviderAuthType
  * api/core/plugin/entities/parameters.py    PluginParameter, PluginParameterType, MCPServerParameterType
  * api/core/entities/parameter_entities.py   CommonParameterType
  * api/core/tools/entities/common_entities.py I18nObject
  * api/core/tools/errors.py                  ToolApiSchemaError & friends (all ValueError subclasses)
  * api/services/tools/api_tools_manage_service.py  parser_api_schema / convert_schema_to_tool_bundles /
    the 100-API limit of create_api_tool_provider / get_api_tool_provider_remote_schema

Only stdlib + pydantic + pyyaml are used.  Dify uses httpx for the two network paths
(openai-plugin json, import-from-URL); they are ported with urllib and keep Dify's semantics
(no redirect following for import-from-URL, status must be exactly 200, same headers, same timeouts).

Flask: Dify reads `request.headers.get("X-Request-Env")` inside parse_openapi_to_tool_bundle.
Here that is the module-level REQUEST_ENV (None == a normal console request without that header).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from enum import StrEnum, auto
from json import dumps as json_dumps
from json import loads as json_loads
from json.decoder import JSONDecodeError
from typing import Any, Union

from pydantic import BaseModel, Field, field_validator, model_validator
from yaml import YAMLError, safe_load

# Value of the incoming console request's "X-Request-Env" header (Flask `request.headers`).
# None reproduces the normal case (header absent).
REQUEST_ENV: str | None = None


# --------------------------------------------------------------------------------------------
# api/core/tools/errors.py  -- every one of these is a plain ValueError subclass in Dify
# --------------------------------------------------------------------------------------------
class ToolProviderNotFoundError(ValueError):
    pass


class ToolNotSupportedError(ValueError):
    pass


class ToolApiSchemaError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# api/core/tools/entities/common_entities.py  I18nObject
# --------------------------------------------------------------------------------------------
class I18nObject(BaseModel):
    en_US: str  # NOTE: a `description: null` in the OpenAPI doc makes this a ValidationError
    zh_Hans: str | None = Field(default=None)
    pt_BR: str | None = Field(default=None)
    ja_JP: str | None = Field(default=None)

    @model_validator(mode="after")
    def _populate_missing_locales(self):
        self.zh_Hans = self.zh_Hans or self.en_US
        self.pt_BR = self.pt_BR or self.en_US
        self.ja_JP = self.ja_JP or self.en_US
        return self


# --------------------------------------------------------------------------------------------
# api/core/entities/parameter_entities.py  CommonParameterType
# --------------------------------------------------------------------------------------------
class CommonParameterType(StrEnum):
    SECRET_INPUT = "secret-input"
    TEXT_INPUT = "text-input"
    SELECT = auto()
    STRING = auto()
    NUMBER = auto()
    FILE = auto()
    FILES = auto()
    SYSTEM_FILES = "system-files"
    BOOLEAN = auto()
    APP_SELECTOR = "app-selector"
    MODEL_SELECTOR = "model-selector"
    TOOLS_SELECTOR = "array[tools]"
    CHECKBOX = "checkbox"
    ANY = auto()
    DYNAMIC_SELECT = "dynamic-select"
    ARRAY = auto()
    OBJECT = auto()


# --------------------------------------------------------------------------------------------
# api/core/plugin/entities/parameters.py  PluginParameterType / MCPServerParameterType /
#                                         PluginParameterOption / PluginParameter
# --------------------------------------------------------------------------------------------
class PluginParameterType(StrEnum):
    STRING = CommonParameterType.STRING
    NUMBER = CommonParameterType.NUMBER
    BOOLEAN = CommonParameterType.BOOLEAN
    SELECT = CommonParameterType.SELECT
    SECRET_INPUT = CommonParameterType.SECRET_INPUT
    FILE = CommonParameterType.FILE
    FILES = CommonParameterType.FILES
    APP_SELECTOR = CommonParameterType.APP_SELECTOR
    MODEL_SELECTOR = CommonParameterType.MODEL_SELECTOR
    TOOLS_SELECTOR = CommonParameterType.TOOLS_SELECTOR
    ANY = CommonParameterType.ANY
    DYNAMIC_SELECT = CommonParameterType.DYNAMIC_SELECT
    CHECKBOX = CommonParameterType.CHECKBOX
    SYSTEM_FILES = CommonParameterType.SYSTEM_FILES
    ARRAY = CommonParameterType.ARRAY
    OBJECT = CommonParameterType.OBJECT


class MCPServerParameterType(StrEnum):
    ARRAY = auto()
    OBJECT = auto()


class PluginParameterOption(BaseModel):
    value: str
    label: I18nObject
    icon: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def transform_id_to_str(cls, value) -> str:
        if not isinstance(value, str):
            return str(value)
        return value


class PluginParameter(BaseModel):
    name: str
    label: I18nObject
    placeholder: I18nObject | None = None
    scope: str | None = None
    required: bool = False
    # parameters.py: `default: Union[float, int, str, bool, list, dict] | None = None`
    default: Union[float, int, str, bool, list, dict] | None = None
    min: Union[float, int] | None = None
    max: Union[float, int] | None = None
    precision: int | None = None
    options: list[PluginParameterOption] = Field(default_factory=list)

    @field_validator("options", mode="before")
    @classmethod
    def transform_options(cls, v):
        if not isinstance(v, list):
            return []
        return v


def as_normal_type(typ: StrEnum):
    # parameters.py as_normal_type: secret-input/select/checkbox -> "string"; others -> their value.
    # This is the JSON-schema "type" the LLM is shown for the parameter
    # (core/agent/base_agent_runner.py _convert_tool_to_prompt_message_tool).
    if typ.value in {PluginParameterType.SECRET_INPUT, PluginParameterType.SELECT, PluginParameterType.CHECKBOX}:
        return "string"
    return typ.value


# --------------------------------------------------------------------------------------------
# api/core/tools/entities/tool_entities.py  ToolParameter / ApiProviderSchemaType / ApiProviderAuthType
# --------------------------------------------------------------------------------------------
class ToolParameter(PluginParameter):
    class ToolParameterType(StrEnum):
        STRING = PluginParameterType.STRING
        NUMBER = PluginParameterType.NUMBER
        BOOLEAN = PluginParameterType.BOOLEAN
        SELECT = PluginParameterType.SELECT
        SECRET_INPUT = PluginParameterType.SECRET_INPUT
        FILE = PluginParameterType.FILE
        FILES = PluginParameterType.FILES
        CHECKBOX = PluginParameterType.CHECKBOX
        APP_SELECTOR = PluginParameterType.APP_SELECTOR
        MODEL_SELECTOR = PluginParameterType.MODEL_SELECTOR
        ANY = PluginParameterType.ANY
        DYNAMIC_SELECT = PluginParameterType.DYNAMIC_SELECT
        ARRAY = MCPServerParameterType.ARRAY
        OBJECT = MCPServerParameterType.OBJECT
        SYSTEM_FILES = PluginParameterType.SYSTEM_FILES

        def as_normal_type(self):
            return as_normal_type(self)

    class ToolParameterForm(StrEnum):
        SCHEMA = auto()
        FORM = auto()
        LLM = auto()

    type: ToolParameterType
    human_description: I18nObject | None = None
    form: ToolParameterForm
    llm_description: str | None = None
    input_schema: dict[str, Any] | None = None


class ApiProviderSchemaType(StrEnum):
    OPENAPI = auto()
    SWAGGER = auto()
    OPENAI_PLUGIN = auto()
    OPENAI_ACTIONS = auto()


class ApiProviderAuthType(StrEnum):
    NONE = auto()
    API_KEY_HEADER = auto()
    API_KEY_QUERY = auto()

    @classmethod
    def value_of(cls, value: str) -> "ApiProviderAuthType":
        # tool_entities.py ApiProviderAuthType.value_of: "'api_key' deprecated in PR #21656"
        v = (value or "").strip().lower()
        if v == "api_key":
            v = cls.API_KEY_HEADER
        for mode in cls:
            if mode.value == v:
                return mode
        valid = ", ".join(m.value for m in cls)
        raise ValueError(f"invalid mode value '{value}', expected one of: {valid}")


# --------------------------------------------------------------------------------------------
# api/core/tools/entities/tool_bundle.py  ApiToolBundle
# --------------------------------------------------------------------------------------------
class ApiToolBundle(BaseModel):
    server_url: str  # servers[0].url + path  (plain string concatenation)
    method: str  # lower-case OpenAPI method key
    summary: str | None = None  # operation.description if present else operation.summary
    operation_id: str | None = None  # == tool name
    parameters: list[ToolParameter] | None = None
    author: str
    icon: str | None = None
    openapi: dict[str, Any]  # the (ref-resolved) operation object; used at call time
    output_schema: Mapping[str, object] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# api/core/tools/utils/parser.py  ApiBasedToolSchemaParser
# --------------------------------------------------------------------------------------------
class ApiBasedToolSchemaParser:
    @staticmethod
    def parse_openapi_to_tool_bundle(
        openapi: Mapping[str, Any], extra_info: dict[str, Any] | None = None, warning: dict[str, Any] | None = None
    ) -> list[ApiToolBundle]:
        # parser.py parse_openapi_to_tool_bundle -- kept line for line.
        warning = warning if warning is not None else {}
        extra_info = extra_info if extra_info is not None else {}

        # set description to extra_info            (KeyError('info') if there is no `info`)
        extra_info["description"] = openapi["info"].get("description", "")

        # (KeyError('servers') if there is no `servers` key -- e.g. every Swagger 2.0 document)
        if len(openapi["servers"]) == 0:
            raise ToolProviderNotFoundError("No server found in the openapi yaml.")

        server_url = openapi["servers"][0]["url"]
        request_env = REQUEST_ENV  # Dify: request.headers.get("X-Request-Env")
        if request_env:
            matched_servers = [server["url"] for server in openapi["servers"] if server["env"] == request_env]
            server_url = matched_servers[0] if matched_servers else server_url

        # list all interfaces  (path-item level `parameters` are NOT read -- only operation-level ones)
        interfaces: list[dict[str, Any]] = []
        for path, path_item in openapi["paths"].items():
            methods = ["get", "post", "put", "delete", "patch", "head", "options", "trace"]
            for method in methods:
                if method in path_item:
                    interfaces.append(
                        {
                            "path": path,
                            "method": method,
                            "operation": path_item[method],
                        }
                    )

        # get all parameters
        bundles = []
        for interface in interfaces:
            # convert parameters
            parameters = []
            if "parameters" in interface["operation"]:
                for i, parameter in enumerate(interface["operation"]["parameters"]):
                    if "$ref" in parameter:
                        root = openapi
                        reference = parameter["$ref"].split("/")[1:]
                        for ref in reference:
                            root = root[ref]
                        interface["operation"]["parameters"][i] = root
                for parameter in interface["operation"]["parameters"]:
                    # Handle complex type defaults that are not supported by PluginParameter
                    default_value = None
                    if "schema" in parameter and "default" in parameter["schema"]:
                        default_value = ApiBasedToolSchemaParser._sanitize_default_value(parameter["schema"]["default"])

                    tool_parameter = ToolParameter(
                        name=parameter["name"],
                        label=I18nObject(en_US=parameter["name"], zh_Hans=parameter["name"]),
                        human_description=I18nObject(
                            en_US=parameter.get("description", ""), zh_Hans=parameter.get("description", "")
                        ),
                        type=ToolParameter.ToolParameterType.STRING,
                        required=parameter.get("required", False),
                        form=ToolParameter.ToolParameterForm.LLM,
                        llm_description=parameter.get("description"),
                        default=default_value,
                        placeholder=I18nObject(
                            en_US=parameter.get("description", ""), zh_Hans=parameter.get("description", "")
                        ),
                    )

                    # check if there is a type
                    typ = ApiBasedToolSchemaParser._get_tool_parameter_type(parameter)
                    if typ:
                        tool_parameter.type = typ

                    parameters.append(tool_parameter)
            # create tool bundle
            # check if there is a request body
            if "requestBody" in interface["operation"]:
                request_body = interface["operation"]["requestBody"]
                if "content" in request_body:
                    for content_type, content in request_body["content"].items():
                        # if there is a reference, get the reference and overwrite the content
                        if "schema" not in content:
                            continue

                        if "$ref" in content["schema"]:
                            # get the reference
                            root = openapi
                            reference = content["schema"]["$ref"].split("/")[1:]
                            for ref in reference:
                                root = root[ref]
                            # overwrite the content
                            interface["operation"]["requestBody"]["content"][content_type]["schema"] = root

                            # handle allOf reference in schema properties
                            for prop_dict in root.get("properties", {}).values():
                                for item in prop_dict.get("allOf", []):
                                    if "$ref" in item:
                                        ref_schema = openapi
                                        reference = item["$ref"].split("/")[1:]
                                        for ref in reference:
                                            ref_schema = ref_schema[ref]
                                    else:
                                        ref_schema = item
                                    for key, value in ref_schema.items():
                                        if isinstance(value, list):
                                            if key not in prop_dict:
                                                prop_dict[key] = []
                                            # extends list field
                                            if isinstance(prop_dict[key], list):
                                                prop_dict[key].extend(value)
                                        elif key not in prop_dict:
                                            # add new field
                                            prop_dict[key] = value
                                if "allOf" in prop_dict:
                                    del prop_dict["allOf"]

                        # parse body parameters
                        if "schema" in interface["operation"]["requestBody"]["content"][content_type]:
                            body_schema = interface["operation"]["requestBody"]["content"][content_type]["schema"]
                            required = body_schema.get("required", [])
                            properties = body_schema.get("properties", {})
                            for name, property in properties.items():
                                # Handle complex type defaults that are not supported by PluginParameter
                                default_value = ApiBasedToolSchemaParser._sanitize_default_value(
                                    property.get("default", None)
                                )

                                tool = ToolParameter(
                                    name=name,
                                    label=I18nObject(en_US=name, zh_Hans=name),
                                    human_description=I18nObject(
                                        en_US=property.get("description", ""), zh_Hans=property.get("description", "")
                                    ),
                                    type=ToolParameter.ToolParameterType.STRING,
                                    required=name in required,
                                    form=ToolParameter.ToolParameterForm.LLM,
                                    llm_description=property.get("description", ""),
                                    default=default_value,
                                    placeholder=I18nObject(
                                        en_US=property.get("description", ""), zh_Hans=property.get("description", "")
                                    ),
                                )
                                # check if there is a type
                                typ = ApiBasedToolSchemaParser._get_tool_parameter_type(property)
                                if typ:
                                    tool.type = typ

                                parameters.append(tool)

            # check if parameters is duplicated
            parameters_count: dict[str, int] = {}
            for parameter in parameters:
                if parameter.name not in parameters_count:
                    parameters_count[parameter.name] = 0
                parameters_count[parameter.name] += 1
            for name, count in parameters_count.items():
                if count > 1:
                    warning["duplicated_parameter"] = f"Parameter {name} is duplicated."

            # check if there is a operation id, use $path_$method as operation id if not
            if "operationId" not in interface["operation"]:
                path = interface["path"]
                if interface["path"].startswith("/"):
                    path = interface["path"][1:]
                # remove special characters like / to ensure the operation id is valid ^[a-zA-Z0-9_-]{1,64}$
                path = re.sub(r"[^a-zA-Z0-9_-]", "", path)
                if not path:
                    path = "<root>"

                interface["operation"]["operationId"] = f"{path}_{interface['method']}"

            bundles.append(
                ApiToolBundle(
                    server_url=server_url + interface["path"],
                    method=interface["method"],
                    summary=interface["operation"]["description"]
                    if "description" in interface["operation"]
                    else interface["operation"].get("summary", None),
                    operation_id=interface["operation"]["operationId"],
                    parameters=parameters,
                    author="",
                    icon=None,
                    openapi=interface["operation"],
                )
            )

        return bundles

    @staticmethod
    def _sanitize_default_value(value):
        # parser.py _sanitize_default_value: list/dict defaults -> None
        if isinstance(value, (list, dict)):
            return None
        return value

    @staticmethod
    def _get_tool_parameter_type(parameter: dict[str, Any]) -> ToolParameter.ToolParameterType | None:
        # parser.py _get_tool_parameter_type -- kept line for line.
        parameter = parameter or {}
        typ: str | None = None
        if parameter.get("format") == "binary":
            return ToolParameter.ToolParameterType.FILE

        if "type" in parameter:
            typ = parameter["type"]
        elif "schema" in parameter and "type" in parameter["schema"]:
            typ = parameter["schema"]["type"]

        # !!! When `type` is a list (OpenAPI 3.1 / JSON-Schema style, e.g. ["string", "null"]),
        # the set-membership test below raises  TypeError: unhashable type: 'list'
        if typ in {"integer", "number"}:
            return ToolParameter.ToolParameterType.NUMBER
        elif typ == "boolean":
            return ToolParameter.ToolParameterType.BOOLEAN
        elif typ == "string":
            return ToolParameter.ToolParameterType.STRING
        elif typ == "array":
            items = parameter.get("items") or parameter.get("schema", {}).get("items")
            if items and items.get("format") == "binary":
                return ToolParameter.ToolParameterType.FILES
            else:
                return ToolParameter.ToolParameterType.ARRAY
        else:
            # "object", missing type, $ref-only, anyOf/oneOf-only ... -> None -> stays STRING
            return None

    @staticmethod
    def parse_openapi_yaml_to_tool_bundle(
        yaml: str, extra_info: dict[str, Any] | None = None, warning: dict[str, Any] | None = None
    ) -> list[ApiToolBundle]:
        # parser.py parse_openapi_yaml_to_tool_bundle
        warning = warning if warning is not None else {}
        extra_info = extra_info if extra_info is not None else {}

        openapi: dict[str, Any] = safe_load(yaml)
        if openapi is None:
            raise ToolApiSchemaError("Invalid openapi yaml.")
        return ApiBasedToolSchemaParser.parse_openapi_to_tool_bundle(openapi, extra_info=extra_info, warning=warning)

    @staticmethod
    def parse_swagger_to_openapi(
        swagger: dict[str, Any], extra_info: dict[str, Any] | None = None, warning: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # parser.py parse_swagger_to_openapi  (only reachable if parse_openapi_to_tool_bundle raised
        # ToolApiSchemaError, which it never does itself -- see auto_parse_to_tool_bundle)
        warning = warning or {}
        info = swagger.get("info", {"title": "Swagger", "description": "Swagger", "version": "1.0.0"})

        servers = swagger.get("servers", [])

        if len(servers) == 0:
            raise ToolApiSchemaError("No server found in the swagger yaml.")

        converted_openapi: dict[str, Any] = {
            "openapi": "3.0.0",
            "info": {
                "title": info.get("title", "Swagger"),
                "description": info.get("description", "Swagger"),
                "version": info.get("version", "1.0.0"),
            },
            "servers": swagger["servers"],
            "paths": {},
            "components": {"schemas": {}},
        }

        if "paths" not in swagger or len(swagger["paths"]) == 0:
            raise ToolApiSchemaError("No paths found in the swagger yaml.")

        for path, path_item in swagger["paths"].items():
            converted_openapi["paths"][path] = {}
            for method, operation in path_item.items():
                if "operationId" not in operation:
                    raise ToolApiSchemaError(f"No operationId found in operation {method} {path}.")

                if ("summary" not in operation or len(operation["summary"]) == 0) and (
                    "description" not in operation or len(operation["description"]) == 0
                ):
                    if warning is not None:
                        warning["missing_summary"] = f"No summary or description found in operation {method} {path}."

                converted_openapi["paths"][path][method] = {
                    "operationId": operation["operationId"],
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": operation.get("parameters", []),
                    "responses": operation.get("responses", {}),
                }

                if "requestBody" in operation:
                    converted_openapi["paths"][path][method]["requestBody"] = operation["requestBody"]

        if "definitions" in swagger:
            for name, definition in swagger["definitions"].items():
                converted_openapi["components"]["schemas"][name] = definition

        return converted_openapi

    @staticmethod
    def parse_openai_plugin_json_to_tool_bundle(
        json: str, extra_info: dict[str, Any] | None = None, warning: dict[str, Any] | None = None
    ) -> list[ApiToolBundle]:
        # parser.py parse_openai_plugin_json_to_tool_bundle
        warning = warning if warning is not None else {}
        extra_info = extra_info if extra_info is not None else {}

        try:
            openai_plugin = json_loads(json)
            api = openai_plugin["api"]  # KeyError('api') is NOT caught (only JSONDecodeError is)
            api_url = api["url"]
            api_type = api["type"]
        except JSONDecodeError:
            raise ToolProviderNotFoundError("Invalid openai plugin json.")

        if api_type != "openapi":
            raise ToolNotSupportedError("Only openapi is supported now.")

        # Dify: httpx.get(api_url, headers={"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "},
        #                 timeout=5)   -- httpx does not follow redirects by default
        status, text = _http_get_no_redirect(
            api_url, {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "}, timeout=5
        )
        if status != 200:
            raise ToolProviderNotFoundError("cannot get openapi yaml from url.")
        return ApiBasedToolSchemaParser.parse_openapi_yaml_to_tool_bundle(text, extra_info=extra_info, warning=warning)

    @staticmethod
    def auto_parse_to_tool_bundle(
        content: str, extra_info: dict[str, Any] | None = None, warning: dict[str, Any] | None = None
    ) -> tuple[list[ApiToolBundle], ApiProviderSchemaType]:
        # parser.py auto_parse_to_tool_bundle -- kept line for line.
        warning = warning if warning is not None else {}
        extra_info = extra_info if extra_info is not None else {}

        content = content.strip()
        loaded_content = None
        json_error = None
        yaml_error = None

        try:
            loaded_content = json_loads(content)
        except JSONDecodeError as e:
            json_error = e

        if loaded_content is None:
            try:
                loaded_content = safe_load(content)
            except YAMLError as e:
                yaml_error = e
        if loaded_content is None:
            raise ToolApiSchemaError(
                f"Invalid api schema, schema is neither json nor yaml. json error: {str(json_error)},"
                f" yaml error: {str(yaml_error)}"
            )

        swagger_error = None
        openapi_error = None
        openapi_plugin_error = None
        schema_type = None

        # Only ToolApiSchemaError triggers the swagger/plugin fallbacks.  parse_openapi_to_tool_bundle
        # never raises ToolApiSchemaError itself, so KeyError / TypeError / ToolProviderNotFoundError /
        # pydantic ValidationError propagate straight out of here.
        try:
            openapi = ApiBasedToolSchemaParser.parse_openapi_to_tool_bundle(
                loaded_content, extra_info=extra_info, warning=warning
            )
            schema_type = ApiProviderSchemaType.OPENAPI
            return openapi, schema_type
        except ToolApiSchemaError as e:
            openapi_error = e

        try:
            converted_swagger = ApiBasedToolSchemaParser.parse_swagger_to_openapi(
                loaded_content, extra_info=extra_info, warning=warning
            )
            schema_type = ApiProviderSchemaType.SWAGGER
            return ApiBasedToolSchemaParser.parse_openapi_to_tool_bundle(
                converted_swagger, extra_info=extra_info, warning=warning
            ), schema_type
        except ToolApiSchemaError as e:
            swagger_error = e
        try:
            openapi_plugin = ApiBasedToolSchemaParser.parse_openai_plugin_json_to_tool_bundle(
                json_dumps(loaded_content), extra_info=extra_info, warning=warning
            )
            return openapi_plugin, ApiProviderSchemaType.OPENAI_PLUGIN
        except ToolNotSupportedError as e:
            openapi_plugin_error = e

        raise ToolApiSchemaError(
            f"Invalid api schema, openapi error: {str(openapi_error)}, swagger error: {str(swagger_error)},"
            f" openapi plugin error: {str(openapi_plugin_error)}"
        )


def _http_get_no_redirect(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """stdlib stand-in for `httpx.get(url, headers=..., timeout=...)` (httpx: follow_redirects=False)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):  # noqa: D401
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(resp.headers.get_content_charset() or "utf-8", "replace")
    except urllib.error.HTTPError as e:  # 3xx (not followed), 4xx, 5xx
        return e.code, e.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# api/services/tools/api_tools_manage_service.py  ApiToolManageService (the parts that matter)
# --------------------------------------------------------------------------------------------
class ApiToolManageService:
    @staticmethod
    def parser_api_schema(schema: str) -> dict[str, Any]:
        """POST /console/api/workspaces/current/tool-provider/api/schema  (the editor's live parse).

        Exceptions are wrapped TWICE -> "invalid schema: invalid schema: unhashable type: 'list'".
        The console turns the ValueError into HTTP 400
        {"code": "invalid_param", "message": <str(e)>, "status": 400}  (libs/external_api.py handle_value_error).
        """
        try:
            warnings: dict[str, str] = {}
            try:
                tool_bundles, schema_type = ApiBasedToolSchemaParser.auto_parse_to_tool_bundle(schema, warning=warnings)
            except Exception as e:
                raise ValueError(f"invalid schema: {str(e)}")
            # (Dify additionally returns a fixed credentials_schema and jsonable_encoder()s everything.)
            return {
                "schema_type": schema_type,
                "parameters_schema": [b.model_dump(mode="json") for b in tool_bundles],
                "warning": warnings,
            }
        except Exception as e:
            raise ValueError(f"invalid schema: {str(e)}")

    @staticmethod
    def convert_schema_to_tool_bundles(
        schema: str, extra_info: dict[str, Any] | None = None
    ) -> tuple[list[ApiToolBundle], ApiProviderSchemaType]:
        """Used by create/update provider: wrapped ONCE -> "invalid schema: unhashable type: 'list'"."""
        try:
            return ApiBasedToolSchemaParser.auto_parse_to_tool_bundle(schema, extra_info=extra_info)
        except Exception as e:
            raise ValueError(f"invalid schema: {str(e)}")

    @staticmethod
    def create_api_tool_provider_checks(schema: str, credentials: dict[str, Any]):
        """The schema-related checks of create_api_tool_provider (POST .../tool-provider/api/add).

        Order in Dify: provider-name uniqueness -> convert_schema_to_tool_bundles -> `len > 100`
        -> "auth_type" in credentials -> ApiProviderAuthType.value_of.   The 100 limit is ONLY in
        create, not in update_api_tool_provider.  Exactly 100 operations is accepted; 101 is refused.
        """
        extra_info: dict[str, str] = {}
        tool_bundles, schema_type = ApiToolManageService.convert_schema_to_tool_bundles(schema, extra_info)
        if len(tool_bundles) > 100:
            raise ValueError("the number of apis should be less than 100")
        if "auth_type" not in credentials:
            raise ValueError("auth_type is required")
        auth_type = ApiProviderAuthType.value_of(credentials["auth_type"])
        return tool_bundles, schema_type, extra_info.get("description", ""), auth_type

    # Headers sent by "Import from URL" (GET .../tool-provider/api/remote?url=...)
    REMOTE_SCHEMA_HEADERS = {
        "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        "Accept": "*/*",
    }

    @staticmethod
    def get_api_tool_provider_remote_schema(url: str, fetch=None) -> dict[str, str]:
        """api_tools_manage_service.py get_api_tool_provider_remote_schema.

        Dify: `response = get(url, headers=headers, timeout=10)` with plain httpx (NOT ssrf_proxy):
        no redirect following, status must be exactly 200, then parser_api_schema() must succeed;
        any failure -> ValueError("invalid schema, please check the url you provided").
        `fetch(url, headers, timeout) -> (status, text)` can be injected for tests.
        """
        fetch = fetch or _http_get_no_redirect
        try:
            status, text = fetch(url, ApiToolManageService.REMOTE_SCHEMA_HEADERS, 10)
            if status != 200:
                raise ValueError(f"Got status code {status}")
            schema = text
            ApiToolManageService.parser_api_schema(schema)
        except Exception:
            raise ValueError("invalid schema, please check the url you provided")
        return {"schema": schema}


# --------------------------------------------------------------------------------------------
# Convenience (not Dify code): flatten what Dify computed, per operation.
# --------------------------------------------------------------------------------------------
def describe(content: str) -> list[dict[str, Any]]:
    """Run auto_parse_to_tool_bundle and return, per operation, what Dify stores/shows.

    `path` is recovered by re-walking `paths` in Dify's order (paths order x fixed method order).
    """
    bundles, _ = ApiBasedToolSchemaParser.auto_parse_to_tool_bundle(content)
    loaded = None
    try:
        loaded = json_loads(content.strip())
    except JSONDecodeError:
        loaded = safe_load(content.strip())
    order = [
        (p, m)
        for p, item in loaded["paths"].items()
        for m in ["get", "post", "put", "delete", "patch", "head", "options", "trace"]
        if m in item
    ]
    out = []
    for (path, _m), b in zip(order, bundles):
        out.append(
            {
                "tool_name": b.operation_id,
                "description": b.summary,
                "server_url": b.server_url,
                "method": b.method,
                "path": path,
                "parameters": [
                    {
                        "name": p.name,
                        "type": p.type.value,
                        "llm_type": p.type.as_normal_type(),
                        "required": p.required,
                        "llm_description": p.llm_description,
                        "default": p.default,
                        "shown_to_llm": p.type
                        not in {
                            ToolParameter.ToolParameterType.SYSTEM_FILES,
                            ToolParameter.ToolParameterType.FILE,
                            ToolParameter.ToolParameterType.FILES,
                        },
                    }
                    for p in (b.parameters or [])
                ],
            }
        )
    return out


