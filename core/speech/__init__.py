"""Speech through the gateway: text to speech and speech to text, the OpenAI /v1/audio/* shapes (core.speech.requests),
uploads read as they arrive (core.speech.upload), audio recognised by its bytes (core.speech.audio), transcripts
rendered in every response format (core.speech.transcripts)."""
