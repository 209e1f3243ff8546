"""Which model processes a site's surveys, and loading it once per run.

The choice (:func:`site_model_name`): ``--model`` wins, else the site's own model, else the
shipped model of the site's profile (``engine/profile_models.json``). Used by the pipeline
(:mod:`jobs.pipeline`) and the Ray executor (:mod:`jobs.executor`). ``options`` is a
:class:`jobs.pipeline.PipelineOptions` (read: ``model_name``, ``weights_dir``, ``device``,
``runtime``; not imported here, which would close a circle with the pipeline).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geodata.store.models import Site

__all__ = ["ModelCache", "load_site_model", "site_model_name"]

log = logging.getLogger(__name__)


def site_model_name(site: Site, options: Any) -> tuple[str, str]:
    """The model that processes ``site``'s surveys, and where the choice comes from.

    ``options.model_name`` (``--model``) wins (``"option"``), else the site's own
    ``model_name`` (``"site"``, set by ``crackwatch site add/set-model --model``), else the
    shipped model of the site's profile (``"profile"``,
    :func:`engine.registry.model_for_profile`).
    """
    from engine.registry import model_for_profile

    if options.model_name:
        return options.model_name, "option"
    if site.model_name:
        return site.model_name, "site"
    return model_for_profile(site.profile), "profile"


#: A cache of loaded models for a run over several sites: ``{(name, weights_dir, device,
#: runtime): model}`` (see ``run_site(models=...)``).
ModelCache = dict[tuple[str, str, str, str], Any]


def load_site_model(options: Any, site: Site, cache: ModelCache | None = None
                ) -> Any:
    """The site's model (:func:`site_model_name`), verified, on the device; from ``cache``
    when it holds it (a model loaded here is added to it).

    Raises:
        ModelNotFoundError, WeightsIntegrityError, ModelCardError: as
        :func:`engine.registry.load_model`; a model named by the site that does not exist says
        how to change the site's model.
    """
    from engine.errors import ModelNotFoundError
    from engine.registry import load_model

    name, source = site_model_name(site, options)
    runtime = getattr(options, "runtime", "auto")
    key = (name, str(options.weights_dir or ""), str(options.device), runtime)
    if cache is not None and key in cache:
        return cache[key]
    try:
        model = load_model(name, weights_dir=options.weights_dir, device=options.device,
                           runtime=runtime)
    except ModelNotFoundError as exc:
        if source == "site":
            raise ModelNotFoundError(
                f"site {site.name!r} names model {name!r}, which is not installed ({exc}) Fix "
                f"the site: `crackwatch site set-model {site.name!r} --model NAME` with a NAME "
                f"from `crackwatch models list`, or `crackwatch site set-model {site.name!r} "
                f"--profile-default` for the {site.profile} model.") from exc
        if source == "profile":
            raise ModelNotFoundError(
                f"model {name!r} of the {site.profile} profile (engine/profile_models.json) "
                f"is not installed ({exc}) Restore its weights and card in engine/weights "
                f"(git checkout / git lfs pull), or give site {site.name!r} an installed "
                f"model: `crackwatch site set-model {site.name!r} --model NAME`.") from exc
        raise
    log.info("site %s: model %s (%s)", site.name, name,
             {"option": "--model", "site": "the site's own",
              "profile": f"the {site.profile} profile's"}[source])
    if cache is not None:
        cache[key] = model
    return model
