"""Quick-start snippets with the customer's base URLs filled in (pure: text only).

Base URLs follow the contract: Anthropic clients take ``…/api/proxy`` (they append
``/v1/messages``), OpenAI clients take ``…/api/proxy/v1``. Claude Code reads
``ANTHROPIC_BASE_URL`` and sends ``ANTHROPIC_AUTH_TOKEN`` as a Bearer token; a set
``ANTHROPIC_API_KEY`` would take precedence, so the snippet clears it.
"""

from __future__ import annotations

from dataclasses import dataclass

KEY_PLACEHOLDER = "sk-cc-YOUR-KEY"
EXAMPLE_MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Snippet:
    id: str
    title: str
    language: str
    text: str


@dataclass(frozen=True)
class BaseUrls:
    anthropic: str
    openai: str


def base_urls(edge_url: str) -> BaseUrls:
    root = edge_url.rstrip("/")
    return BaseUrls(anthropic=f"{root}/api/proxy", openai=f"{root}/api/proxy/v1")


def quick_starts(
    edge_url: str, key: str = KEY_PLACEHOLDER, model: str = EXAMPLE_MODEL
) -> list[Snippet]:
    urls = base_urls(edge_url)
    a, o = urls.anthropic, urls.openai
    return [
        Snippet("claude-code", "Claude Code", "shell",
                f'export ANTHROPIC_BASE_URL="{a}"\n'
                f'export ANTHROPIC_AUTH_TOKEN="{key}"\n'
                "unset ANTHROPIC_API_KEY  # it would take precedence over the token\n"
                "claude"),
        Snippet("anthropic-python", "Anthropic SDK, Python", "python",
                "from anthropic import Anthropic\n\n"
                f'client = Anthropic(base_url="{a}", api_key="{key}")\n'
                "message = client.messages.create(\n"
                f'    model="{model}",\n'
                "    max_tokens=1024,\n"
                '    messages=[{"role": "user", "content": "Hello"}],\n'
                ")\n"
                "print(message.content[0].text)"),
        Snippet("anthropic-typescript", "Anthropic SDK, TypeScript", "typescript",
                'import Anthropic from "@anthropic-ai/sdk";\n\n'
                f'const client = new Anthropic({{ baseURL: "{a}", apiKey: "{key}" }});\n'
                "const message = await client.messages.create({\n"
                f'  model: "{model}",\n'
                "  max_tokens: 1024,\n"
                '  messages: [{ role: "user", content: "Hello" }],\n'
                "});\n"
                "console.log(message.content);"),
        Snippet("openai-python", "OpenAI SDK, Python", "python",
                "from openai import OpenAI\n\n"
                f'client = OpenAI(base_url="{o}", api_key="{key}")\n'
                "reply = client.chat.completions.create(\n"
                f'    model="{model}",\n'
                '    messages=[{"role": "user", "content": "Hello"}],\n'
                ")\n"
                "print(reply.choices[0].message.content)"),
        Snippet("openai-typescript", "OpenAI SDK, TypeScript", "typescript",
                'import OpenAI from "openai";\n\n'
                f'const client = new OpenAI({{ baseURL: "{o}", apiKey: "{key}" }});\n'
                "const reply = await client.chat.completions.create({\n"
                f'  model: "{model}",\n'
                '  messages: [{ role: "user", content: "Hello" }],\n'
                "});\n"
                "console.log(reply.choices[0].message.content);"),
        Snippet("curl", "curl", "shell",
                f'curl "{a}/v1/messages" \\\n'
                f'  -H "x-api-key: {key}" \\\n'
                '  -H "anthropic-version: 2023-06-01" \\\n'
                '  -H "content-type: application/json" \\\n'
                f'  -d \'{{"model": "{model}", "max_tokens": 256, '
                '"messages": [{"role": "user", "content": "Hello"}]}\''),
        Snippet("openai-compatible", "Cursor, Cline, LibreChat (OpenAI-compatible)", "text",
                "Provider: OpenAI-compatible (custom OpenAI base URL)\n"
                f"Base URL: {o}\n"
                f"API key:  {key}\n"
                f"Model:    {model}"),
        Snippet("cline-anthropic", "Cline (Anthropic provider)", "text",
                "API Provider: Anthropic\n"
                f"Use custom base URL: {a}\n"
                f"API key: {key}"),
    ]  # fmt: skip
