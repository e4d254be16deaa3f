"""ControlNet (sd-webui-controlnet's units, models, preprocessors and API) on diffusers' ControlNet pipelines.

    manager.py        ControlNets: the engine's part (folders, cache, preprocessors; planning and preparing units)
    units.py          the unit (the extension's fields), its checks, its infotext
    models.py         finding, reading (safely) and building ControlNet files; family checks
    ldm_layout.py     the single-file (cldm) layout <-> diffusers names
    preprocessors.py  the modules (canny, depth ...)
    sampling.py       the ControlNet pipelines and the control modes
"""
