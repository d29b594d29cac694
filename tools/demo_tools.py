"""The tools and tool-call spelling shared by tools/demo_data.py and tools/demo_agents.py:
`math` and `code_interpreter` as conclave defines them (toolkit/math_tool.cpp,
toolkit/sandbox.cpp)."""
import json

MATH_TOOL = {
    "type": "function",
    "function": {
        "name": "math",
        "description": "Evaluate an arithmetic expression, e.g. (2+3)*sqrt(16)/2^3.",
        "parameters": {"type": "object", "required": ["expression"],
                       "properties": {"expression": {"type": "string",
                                                     "description": "the expression"}}},
    },
}
INTERP_TOOL = {
    "type": "function",
    "function": {
        "name": "code_interpreter",
        "description": ("Run a Python 3 program in a sandbox (no network, only its working "
                        "directory is writable); returns its exit status, stdout and stderr."),
        "parameters": {"type": "object", "required": ["code"],
                       "properties": {"code": {"type": "string",
                                               "description": "the Python 3 program"}}},
    },
}


def call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
