"""Everything a job needs from the network libraries, in one object the engine owns.

    networks = NetworkManager(settings, hashes)
    job = networks.prepare(model, device, prepared.networks, texts, req.override_settings)   # raises NetworkError
    ... job.params (infotext), job.warnings, then per batch: job.activate(networks_of_the_batch_images)

`prepare` resolves every LoRA of the job (unknown names fail before any image), loads those not loaded into the
model yet, loads new embeddings into the model's tokenizers, and puts the job's VAE in place. `activate` sets the
weights of one batch's LoRAs and fuses them (nothing to do when the previous batch or job used the same ones).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from webui.engine.networks.embeddings import EmbeddingLibrary
from webui.engine.networks.lora import LoadedLora, LoraLibrary, ModelLoras
from webui.engine.networks.vae import AUTOMATIC, VaeChoice, VaeLibrary

log = logging.getLogger(__name__)


def network_pipeline(model, device):
    """The pipeline whose LoRA/TI loader methods act on the model's shared components."""
    from webui.engine.generation import pipeline_for

    return pipeline_for(model, "inpaint" if model.spec.inpaint else "txt2img", device)


@dataclass
class JobNetworks:
    model: object
    pipe: object
    loras: ModelLoras
    by_name: dict[str, LoadedLora]  # name as written in the prompt -> loaded LoRA
    vae: VaeChoice
    params: dict = field(default_factory=dict)  # "Lora hashes", "TI hashes"
    warnings: list[str] = field(default_factory=list)

    @property
    def vae_name(self) -> str | None:
        return self.vae.name

    @property
    def vae_hash(self) -> str | None:
        return self.vae.sha256[:10] if self.vae.sha256 else None

    def describe(self) -> str:
        """The LoRAs fused now and the VAE, for an error message (e.g. the model produced NaN)."""
        names = {lo.adapter: name for name, lo in self.by_name.items()}
        tags = [f"<lora:{names.get(a, a)}:{te:g}>" if te == un else f"<lora:{names.get(a, a)}:{te:g}:{un:g}>"
                for a, te, un in self.loras.applied]
        vae = f"VAE {self.vae.name}" if self.vae.name else "the checkpoint's own VAE"
        return (f"LoRA {', '.join(tags)}, " if tags else "no LoRA, ") + vae

    def activate(self, networks_per_image: list[list]) -> None:
        """Make the LoRAs of one batch (the union over its images) active with their weights."""
        wanted: dict[str, tuple[LoadedLora, float, float]] = {}
        for nets in networks_per_image:
            for net in nets:
                if net.kind != "lora":
                    continue
                lo = self.by_name[net.name]
                te, un = net.te_multiplier, net.unet_multiplier
                prev = wanted.get(lo.adapter)
                if prev is None:
                    wanted[lo.adapter] = (lo, te, un)
                elif (prev[1], prev[2]) != (te, un):
                    msg = (f"LoRA {net.name!r} has different weights in the images of one batch; "
                           f"{prev[1]:g}/{prev[2]:g} was used for the whole batch")
                    if msg not in self.warnings:
                        self.warnings.append(msg)
        self.loras.apply(self.pipe, list(wanted.values()))


class NetworkManager:
    def __init__(self, settings, hashes=None, max_loaded_loras: int = 8):
        self.loras = LoraLibrary(settings.lora_search_dirs)
        self.embeddings = EmbeddingLibrary(settings.embeddings_path, hashes)
        self.vaes = VaeLibrary(settings.vae_search_dirs, hashes)
        self.vae_choice = AUTOMATIC  # A1111's "SD VAE" option
        self.max_loaded_loras = max_loaded_loras

    # ---- VAE -------------------------------------------------------------------------------------------------
    def set_vae_choice(self, choice: str | None, model=None) -> str:
        """A1111's "SD VAE" option. With a model, the VAE is put into it first and the choice changes only when
        that worked: a file that fails to load (NetworkError) leaves the previous VAE chosen and in place."""
        choice = self.vaes.validate(choice)
        if model is not None:
            self.apply_vae(model, choice)
        else:
            self.vaes.check_file(choice)  # no model to fit it to: at least refuse a file that does not read
        self.vae_choice = choice
        return choice

    def apply_vae(self, model, choice: str | None = None) -> VaeChoice:
        vae = self.vaes.resolve(choice or self.vae_choice, model)
        self.vaes.apply(model, vae)
        return vae

    # ---- a job -----------------------------------------------------------------------------------------------
    def resolve_loras(self, networks_per_image: list[list]) -> tuple[dict, list[str]]:
        """At planning time: every <lora:...> name of the job -> its file (an unknown name fails before the queue),
        and warnings for what is ignored."""
        names: dict[str, object] = {}
        warnings: list[str] = []
        other_kinds: list[str] = []
        for nets in networks_per_image:
            for net in nets:
                if net.kind != "lora":
                    other_kinds += [net.tag] if net.tag not in other_kinds else []
                    continue
                if net.name not in names:
                    names[net.name] = self.loras.resolve(net.name)
                if net.dyn_dim is not None:
                    msg = f"{net.tag}: dyn (dynamic LoRA rank) is not supported and was ignored"
                    warnings += [msg] if msg not in warnings else []
        if other_kinds:
            warnings.append(f"Extra networks of these kinds are not supported and were ignored: {', '.join(other_kinds)}")
        return names, warnings

    def prepare(self, model, device, names: dict, texts: list[str], vae_choice: str | None = None) -> JobNetworks:
        """In the worker: the job's VAE in place, its LoRAs (`names`, from resolve_loras) loaded into the model,
        and the embeddings the texts use."""
        warnings: list[str] = []
        pipe = network_pipeline(model, device)
        vae = self.apply_vae(model, vae_choice or self.vae_choice)  # first: a file that fails loads nothing else
        state = ModelLoras.of(model)
        state.max_loaded = self.max_loaded_loras
        unique = list({str(i.path.resolve()): i for i in names.values()}.values())
        loaded = state.ensure(model, pipe, self.loras, unique)
        by_info = {str(lo.info.path.resolve()): lo for lo in loaded}
        by_name = {n: by_info[str(info.path.resolve())] for n, info in names.items()}
        for lo in loaded:
            warnings += [w for w in lo.warnings if w not in warnings]

        params: dict = {}
        if by_name:
            hashes = []
            for n, lo in by_name.items():
                clean = n.replace(":", "").replace(",", "")
                hashes.append(f"{clean}: {self.loras.short_hash(lo.info)}")
            params["Lora hashes"] = ", ".join(hashes)

        # embeddings: loaded into the model once; hashes of those the prompts use
        self.embeddings.ensure_loaded(model, pipe)
        used = self.embeddings.used_in(model, texts)
        if used:
            params["TI hashes"] = ", ".join(f"{e.name}: {self.embeddings.short_hash(e)}" for e in used)
        return JobNetworks(model, pipe, state, by_name, vae, params, warnings)
