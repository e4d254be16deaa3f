"""LoRA / LyCORIS, textual-inversion embeddings and VAE selection (no UI imports, no module-level state).

* ``lora.LoraLibrary`` - LoRA files (list/find/refresh, A1111 API items, metadata, previews, short hashes);
  ``lora.ModelLoras`` - the LoRAs loaded into one model and fused per job.
* ``lora_convert`` - kohya / LDM / diffusers / PEFT layouts -> one PEFT state dict checked against the model.
* ``embeddings.EmbeddingLibrary`` - textual-inversion files, loaded/skipped per model.
* ``vae.VaeLibrary`` - VAE files, Automatic / None / file, swapping without a checkpoint reload.
* ``manager.NetworkManager`` - what the engine calls per job.
"""
from webui.engine.networks.common import NetworkError, UnsupportedNetworkError
from webui.engine.networks.embeddings import Embedding, EmbeddingLibrary
from webui.engine.networks.lora import LoraInfo, LoraLibrary, ModelLoras
from webui.engine.networks.manager import JobNetworks, NetworkManager
from webui.engine.networks.vae import AUTOMATIC, NONE, VaeInfo, VaeLibrary

__all__ = ["AUTOMATIC", "NONE", "Embedding", "EmbeddingLibrary", "JobNetworks", "LoraInfo", "LoraLibrary",
           "ModelLoras", "NetworkError", "NetworkManager", "UnsupportedNetworkError", "VaeInfo", "VaeLibrary"]
