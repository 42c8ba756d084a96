"""Explore screen: move one latent of one image by hand and watch what the decoder draws.

Everything that touches the model runs in thread workers through the engine's
:class:`~bvae_tui.engine.analysis.explore.Explorer` (a read-only checkpoint: the run may be
training), which hands back numpy arrays; this screen only keeps the code being edited and draws.

Decodes are coalesced, latest wins: at most one decode runs at a time, and while it runs a key
press only updates the wanted code; when it finishes, the newest wanted code (if it changed) is
decoded next. Holding → therefore never queues work: ``started - drawn`` is at most one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain
from bvae_tui.tui.widgets.latent_list import LatentList
from bvae_tui.tui.widgets.preview_image import preview_image
from bvae_tui.tui.widgets.response_bars import ResponseBars

SMALL_STEP = 0.25  # an arrow key (the engine's explore.SMALL_STEP; not imported: torch-free UI)
LARGE_STEP = 1.0  # shift + arrow

HELP = """
# Explore

One image of the run's dataset, its reconstruction, and the decode of its code with the latents
you moved (`source · recon · edited`); under them, the selected latent's whole traversal row
(▲ marks its current value). The latents are in KL order (● active); once the run is evaluated,
each shows the factor it carries most (≈posX .61: MI / H from eval.json). The checkpoint is
read, never locked: a run still training can be explored, and `R` loads a newer checkpoint.

The inverse view (`v`) steps one *factor* of the source image (the next posX class, the next
shape; `f` picks the factor) and shows how each latent's encoder mean moves: which latents
respond to x position, straight from the encoder.

| key | action |
|---|---|
| `↑` / `↓` | pick a latent |
| `←` / `→` | move it by 0.25 (`shift` with them: by 1) |
| `0` | zero the latent |
| `r` | reset every latent to the source image's code |
| `n` / `N` | next / previous source image (by dataset index) |
| `x` | a random source image |
| `g` | pick the source image by index or by its factor classes |
| `s` | a code drawn from the prior N(0, I) |
| `v` | the inverse view instead of the traversal row |
| `f` | the factor the inverse view steps |
| `e` | save what is shown into the run's exports/ (PNG and GIF of the row) |
| `R` | reload the newest checkpoint |
| `esc` | back |

`bvae explore RUN` draws the same view headless (`--image`, `--factors`, `--set`, `--traverse`,
`--respond`, `-o FILE.png|.gif`).
"""


class Loaded(Message):
    def __init__(self, explorer: Any, error: str | None) -> None:
        super().__init__()
        self.explorer = explorer
        self.error = error


class SourceReady(Message):
    def __init__(self, index: int | None, base: np.ndarray, source: np.ndarray | None,
                 keep_code: bool) -> None:
        super().__init__()
        self.index, self.base, self.source, self.keep_code = index, base, source, keep_code


class Decoded(Message):
    def __init__(self, generation: int, view: Any, error: str | None) -> None:
        super().__init__()
        self.generation, self.view, self.error = generation, view, error


class Responded(Message):
    def __init__(self, response: Any, error: str | None) -> None:
        super().__init__()
        self.response, self.error = response, error


class ExploreScreen(Screen):
    HELP = HELP
    CSS_PATH = "explore.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("up", "pick(-1)", "Latent", key_display="↑↓", priority=True),
        Binding("down", "pick(1)", "Latent", show=False, priority=True),
        Binding("left", f"move({-SMALL_STEP})", "Move", key_display="←→", priority=True),
        Binding("right", f"move({SMALL_STEP})", "Move", show=False, priority=True),
        Binding("shift+left", f"move({-LARGE_STEP})", "Move more", show=False, priority=True),
        Binding("shift+right", f"move({LARGE_STEP})", "Move more", show=False, priority=True),
        Binding("0", "zero", "Zero", show=False),
        Binding("r", "reset", "Reset"),
        Binding("n", "step_image(1)", "Next"),
        Binding("N", "step_image(-1)", "Prev", show=False),
        Binding("x", "random_image", "Random", show=False),
        Binding("g", "pick_image", "Image"),
        Binding("s", "prior", "Prior", show=False),
        Binding("v", "inverse", "Inverse"),
        Binding("f", "cycle_factor", "Factor", show=False),
        Binding("e", "save", "Save"),
        Binding("R", "reload", "Reload", show=False),
    ]

    def __init__(self, run_path: Path, data_root: Path | None = None,
                 device: str = "cpu") -> None:
        super().__init__()
        from bvae_tui.engine.runs.store import Run

        self.run = Run(run_path)
        self.data_root = data_root
        self.device = device
        self.explorer: Any = None
        self.index: int | None = None  # the source image (None: a prior code)
        self.base: np.ndarray | None = None  # its code
        self.source: np.ndarray | None = None
        self.code: np.ndarray | None = None  # the edited code
        self.latent = 0
        self.seed = 0  # of the prior code / the random image
        self.view: Any = None  # the last view drawn
        self.inverse = False
        self.factor: str | None = None
        self.response: Any = None
        # Coalescing: `wanted` counts code changes; a decode is started for the newest one only
        # when none is running. started - drawn is what is pending (at most 1).
        self.wanted = 0
        self.started = 0
        self.drawn = 0
        self.busy = False
        self.max_pending = 0

    def compose(self) -> ComposeResult:
        yield Static(id="ex-header", classes="topbar")
        with Horizontal(id="ex-top"):
            with Vertical(id="ex-side"):
                yield Static(Text("latents (KL order)", style="bold"), classes="section")
                yield LatentList(id="ex-latents")
            with Vertical(id="ex-images"):
                yield Static(id="ex-images-title", classes="section")
                yield preview_image("decoding…", id="ex-triple")
        yield Static(id="ex-row-title", classes="section")
        yield preview_image("", id="ex-row")
        yield ResponseBars(id="ex-response")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ex-response").display = False
        self._header("loading the checkpoint…")
        self._load()

    # Loading ----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="explore-load", exit_on_error=False)
    def _load(self) -> None:
        from bvae_tui.engine.analysis.explore import open_explorer

        try:
            explorer = open_explorer(self.run, self.device, self.run.data_dir or self.data_root,
                                     need_data=False)
        except UserError as exc:
            self.post_message(Loaded(None, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not take the app down
            self.post_message(Loaded(None, f"cannot load the model: {exc!r}"))
            return
        self.post_message(Loaded(explorer, None))

    def on_loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=10)
            self._header(message.error)
            return
        first = self.explorer is None
        self.explorer = ex = message.explorer
        if ex.loaded.note:
            self.notify(ex.loaded.note, severity="warning")
        if ex.dataset is None:
            self.notify(f"{ex.data_problem}; showing codes from the prior (s draws another)",
                        severity="warning", timeout=10)
        if first:
            self.latent = ex.order[0]
            self.factor = next(iter(ex.steppable_factors()), None)
        self._set_source(self._first_index() if first else self.index)

    def _first_index(self) -> int | None:
        if self.explorer.dataset is None:
            return None
        from bvae_tui.engine.analysis.visualise import fixed_indices

        return int(fixed_indices(self.explorer.dataset, n=1)[0])

    def _set_source(self, index: int | None, keep_code: bool = False) -> None:
        self._encode(index, self.seed, keep_code)

    @work(thread=True, exclusive=True, group="explore-encode", exit_on_error=False)
    def _encode(self, index: int | None, seed: int, keep_code: bool) -> None:
        try:
            base, source = self.explorer.base(index, seed)
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:  # a newer source was asked for meanwhile
            self.post_message(SourceReady(index, base, source, keep_code))

    def on_source_ready(self, message: SourceReady) -> None:
        self.index, self.base, self.source = message.index, message.base, message.source
        if not message.keep_code or self.code is None:
            self.code = message.base.copy()
        self.response = None
        self._changed()
        if self.inverse:
            self._respond_now()

    # Decoding, coalesced ----------------------------------------------------------------------
    def _changed(self) -> None:
        """The code (or the latent, or the source) changed: draw the newest state."""
        self._update_latents()
        self.wanted += 1
        if not self.busy:
            self._start_decode()

    def _start_decode(self) -> None:
        if self.explorer is None or self.code is None or self.base is None:
            return
        self.busy = True
        self.started += 1
        self.max_pending = max(self.max_pending, self.started - self.drawn)
        self._decode(self.wanted, self.index, self.base.copy(), self.code.copy(), self.latent,
                     self.source)

    @work(thread=True, group="explore-decode", exit_on_error=False)
    def _decode(self, generation: int, index: int | None, base: np.ndarray, code: np.ndarray,
                latent: int, source: np.ndarray | None) -> None:
        try:
            view = self.explorer.view(index, base, code, latent, source)
        except Exception as exc:  # noqa: BLE001 - shown; the screen stays usable
            self.post_message(Decoded(generation, None, f"decode failed: {exc}"))
            return
        self.post_message(Decoded(generation, view, None))

    def on_decoded(self, message: Decoded) -> None:
        self.busy = False
        self.drawn += 1
        if message.error:
            self.notify(message.error, severity="error")
        else:
            self.view = message.view
            self._draw()
        if message.generation != self.wanted:
            self._start_decode()  # the code moved meanwhile: only its newest value is decoded

    # Drawing ----------------------------------------------------------------------------------
    def _header(self, note: str = "") -> None:
        ex = self.explorer
        text = Text("explore ", style="bold")
        text.append(plain(self.run.name), style="bold cyan")
        if ex is not None:
            text.append(f" @ it {ex.iteration}", style="bold")
            if self.code is None:
                source = "…"
            elif self.index is None:
                source = f"a code from the prior (seed {self.seed})"
            else:
                source = ex.describe_index(self.index)
            text.append(f"  {source}")
        if note:
            text.append(f"  {plain(note)}", style="dim")
        self.query_one("#ex-header", Static).update(text)

    def _update_latents(self) -> None:
        ex = self.explorer
        if ex is None:
            return
        self.query_one(LatentList).set_state(ex.order, ex.latents, self.code, self.latent,
                                             ex.limit)
        self._header()

    def _draw(self) -> None:
        from bvae_tui.engine.analysis.explore import row_image, triple_image

        view = self.view
        value = float(view.code[view.latent])
        names = "source · recon · edited" if view.source is not None else "prior · edited"
        self.query_one("#ex-images-title", Static).update(
            Text(f"{names}   z{view.latent} = {value:+.2f}", style="bold"))
        self.query_one("#ex-triple").set_image(triple_image(view))
        self._draw_row_title(view, value)
        self.query_one("#ex-row").set_image(row_image(view))

    def _draw_row_title(self, view: Any, value: float) -> None:
        title = Text(f"z{view.latent} from {-view.limit:+g} to {view.limit:+g}", style="bold")
        title.append(f"   ▲ {value:+.2f} (the marked tile)   v: inverse view", style="dim")
        self.query_one("#ex-row-title", Static).update(title)

    # Keys -------------------------------------------------------------------------------------
    def _ready(self) -> bool:
        if self.explorer is None or self.code is None:
            self.notify("the model is still loading", severity="warning", timeout=3)
            return False
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_pick(self, delta: int) -> None:
        if not self._ready():
            return
        order = self.explorer.order
        self.latent = order[(order.index(self.latent) + delta) % len(order)]
        self._changed()

    def action_move(self, amount: float) -> None:
        if not self._ready():
            return
        self.code[self.latent] = np.float32(self.code[self.latent] + amount)
        self._changed()

    def action_zero(self) -> None:
        if self._ready():
            self.code[self.latent] = 0.0
            self._changed()

    def action_reset(self) -> None:
        if self._ready():
            self.code = self.base.copy()
            self._changed()

    def _need_data(self) -> bool:
        if not self._ready():
            return False
        if self.explorer.dataset is None:
            self.notify(self.explorer.data_problem or "no dataset", severity="warning")
            return False
        return True

    def action_step_image(self, delta: int) -> None:
        if self._need_data():
            n = self.explorer.dataset.n
            self._set_source(((self.index or 0) + delta) % n)

    def action_random_image(self) -> None:
        if self._need_data():
            self.seed += 1
            self._set_source(self.explorer.random_index(self.seed))

    def action_prior(self) -> None:
        if self._ready():
            self.seed += 1
            self._set_source(None)

    def action_pick_image(self) -> None:
        if not self._need_data():
            return
        from bvae_tui.tui.screens.explore_pick import PickImageScreen

        def chosen(index: int | None) -> None:
            if index is not None:
                self._set_source(index)

        self.app.push_screen(PickImageScreen(self.explorer, self.index), chosen)

    # The inverse view -------------------------------------------------------------------------
    def action_inverse(self) -> None:
        if not self._ready():
            return
        self.inverse = not self.inverse
        self.query_one("#ex-row").display = not self.inverse
        self.query_one("#ex-row-title").display = not self.inverse
        self.query_one("#ex-response").display = self.inverse
        if self.inverse:
            self._respond_now()

    def action_cycle_factor(self) -> None:
        if not self._need_data():
            return
        factors = self.explorer.steppable_factors()
        if not factors:
            self.notify(f"dataset {self.explorer.dataset.name} has no ground-truth factors",
                        severity="warning")
            return
        at = factors.index(self.factor) if self.factor in factors else -1
        self.factor = factors[(at + 1) % len(factors)]
        if not self.inverse:
            self.action_inverse()
        else:
            self._respond_now()

    def _respond_now(self) -> None:
        bars = self.query_one(ResponseBars)
        ex = self.explorer
        if ex.dataset is None or self.index is None or not ex.steppable_factors():
            why = ex.data_problem if ex.dataset is None else (
                "the source is a prior code: pick an image (n, x, g)" if self.index is None
                else f"dataset {ex.dataset.name} has no ground-truth factors to step")
            bars.set_message(f"inverse view: {why}")
            return
        bars.set_message(f"stepping {self.factor}…")
        self._respond(self.index, self.factor)

    @work(thread=True, exclusive=True, group="explore-respond", exit_on_error=False)
    def _respond(self, index: int, factor: str) -> None:
        try:
            response = self.explorer.respond(index, factor)
        except UserError as exc:
            self.post_message(Responded(None, str(exc)))
            return
        self.post_message(Responded(response, None))

    def on_responded(self, message: Responded) -> None:
        bars = self.query_one(ResponseBars)
        if message.error:
            self.notify(message.error, severity="error")
            bars.set_message(message.error)
            return
        if message.response.index != self.index:
            return  # the source changed meanwhile: its own response is on the way
        from bvae_tui.engine.analysis.explore import class_label

        self.response = r = message.response
        ds = self.explorer.dataset
        size = int(ds.factor_sizes[list(ds.factor_names).index(r.factor)])
        title = (f"{r.factor} {class_label(r.factor, size, r.from_class, ds)} → "
                 f"{class_label(r.factor, size, r.to_class, ds)} (image {r.index} → {r.to_index}):"
                 " Δ mean")
        bars.set_response(r, title, self.explorer.order, self.explorer.latents)

    # Saving and reloading ---------------------------------------------------------------------
    def action_save(self) -> None:
        if self.view is None:
            self.notify("nothing drawn yet", severity="warning")
            return
        self._save(self.view, self.seed)

    @work(thread=True, group="explore-save", exit_on_error=False)
    def _save(self, view: Any, seed: int) -> None:
        from bvae_tui.engine.analysis.explore import save_view

        try:
            paths = save_view(self.explorer, view, seed=seed, kinds=("png", "gif"))
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, "wrote " + ", ".join(str(p) for p in paths),
                                  timeout=10)

    def action_reload(self) -> None:
        if self.explorer is None:
            self._load()
            return
        if not self.explorer.checkpoint_changed():
            self.notify(f"no newer checkpoint than iteration {self.explorer.iteration}")
            return
        self.notify("loading the newer checkpoint…")
        self._load()
