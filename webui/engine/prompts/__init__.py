"""The A1111 prompt language: emphasis, editing/alternation schedules, encoding, wildcards, styles.

Modules (no UI imports, no module-level mutable state):

* ``attention``: ``parse_prompt_attention`` - ``(x)``, ``[x]``, ``(x:w)``, escapes, ``BREAK``.
* ``schedule``: ``prompt_schedule`` - ``[from:to:when]``, ``[a|b]``, per-step texts.
* ``encoder``: ``PromptEncoder`` - 75-token chunks, weights, clip skip, SD1/SD2/SDXL.
* ``conditioning``: ``build_conditioning`` - per-step embeddings for diffusers' step callback.
* ``wildcards``: ``WildcardExpander`` - ``__name__`` / ``{a|b}`` via dynamicprompts.
* ``styles``: ``StyleStore`` - A1111 ``styles.csv``.
* ``extra_networks``: ``extract_extra_networks`` - ``<lora:...>`` tags.

Heavy imports (torch, dynamicprompts) happen only when those modules are imported.
"""
