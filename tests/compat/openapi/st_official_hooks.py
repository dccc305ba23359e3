"""Schemathesis hooks for the run on the official Open Inference Protocol document: every model route names a
model the server serves (`simple`, version 1), so the documented answers are the ones to check. A random model
name would be a 404, which the official document does not list (it lists 200, and 400 on infer)."""

import schemathesis

MODEL = {"MODEL_NAME": "simple", "MODEL_VERSION": "1"}


@schemathesis.hook
def map_case(context, case):
    if case.path_parameters:
        case.path_parameters = {key: MODEL.get(key, value) for key, value in case.path_parameters.items()}
    return case
