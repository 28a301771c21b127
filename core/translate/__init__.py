"""Translation between the client dialects, the canonical model and the engines.

    canonical          the dialect-free request/response/stream model
    openai_dialect     /v1/*            parse_* requests, render_* bodies   openai_stream     SSE encoders
    ollama_dialect     /api/*           parse_* requests, render_* bodies   ollama_stream     NDJSON encoders
    anthropic_dialect  /anthropic/v1/*  parse_messages, render_message      anthropic_stream  SSE encoder
    ollama_engine      canonical <-> Ollama native API (requests, responses, NDJSON stream parser)
    vllm_engine        canonical <-> vLLM OpenAI server (requests, responses, SSE stream parser)
    streaming          the StreamParser / StreamEncoder protocols and the byte-line splitter
    engine_errors      EngineResponseError, EngineStreamError, engine error bodies -> messages
    validate, content, ids   helpers shared by the modules above

Plain Python (orjson, dataclasses): no web framework, cheap enough to run per streamed chunk.
"""
