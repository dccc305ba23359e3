"""Schemathesis hooks for the oxinfer runs (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis


@schemathesis.hook
def filter_case(context, case):
    """Drop JSON bodies sent with `Inference-Header-Content-Length`: that header makes the body binary tensor
    data whatever the Content-Type says (`0` = the raw bytes of the model's single input), so the JSON schema
    does not describe such a request. The binary extension has its own tests (tests/binary.rs, compat/triton)."""
    headers = case.headers or {}
    return not ("Inference-Header-Content-Length" in headers and case.media_type == "application/json")
