"""selfinstruct: Self-Instruct (Wang et al., ACL 2023) as a library and CLI.

Importing this package is cheap: no model runtime (llama_cpp, torch, transformers, ray)
is imported until a backend that needs it is opened.
"""

__version__ = "0.1.0"
