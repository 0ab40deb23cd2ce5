"""The stages screen: one form per stage (pretrain, sft, dpo, ppo, grpo), picked at the top.

Checks run through engine.project at every change; Ctrl+S saves every stage edited here into
project.toml (atomically). Ctrl+G opens the stage picker (the app's `stage`, shared with the
monitor); PgDn / PgUp jump between the form's sections (screens/base.py FormScreen). The preview
line is the `llmlab run` command that runs the shown stage with these edits applied to the saved
file (`--set` for each changed field).

Ctrl+O shows the dataset preview: the first examples as the model sees them need the tokenizer,
so a worker builds them from the edited stage table (screens/preview.py).

Ctrl+B starts a sweep of the shown stage on the saved project (`llmlab sweep` in a process of its
own: engine.worker.start_sweep): the grid is typed as `KEY=V1,V2 ...`, checked before it starts.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import ContentSwitcher, Footer, Label, Select, Static

from engine.project import (
    STAGES,
    DatasetConfig,
    LLMLabError,
    Problem,
    project_to_dict,
)
from engine.project.files import checked
from engine.project.overrides import NAMED, set_overrides
from engine.project.runs import checkpoints, list_runs
from llmlab_tui.editing import run_command, save_sections
from llmlab_tui.screens.base import FormScreen
from llmlab_tui.screens.confirm import NameScreen
from llmlab_tui.screens.preview import PreviewScreen
from llmlab_tui.summary import stage_lines
from llmlab_tui.sweeps import start_sweep
from llmlab_tui.widgets.forms import FieldHelp, FieldSet, FormScroll
from llmlab_tui.widgets.nav import NavBar
from llmlab_tui.widgets.stage_form import StageForm
from llmlab_tui.widgets.stage_select import StageSelect

WIDE = 110  # columns from which the run's summary sits beside the form


class StagesScreen(FormScreen):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="stages.save"),
        Binding("ctrl+g", "pick_stage", "Stage", priority=True, id="stages.pick_stage"),  # see FormScreen
        # Enter in the stage menu: the keys typed after it wait for the stage's form (action_choose_stage)
        Binding("enter", "choose_stage", "Choose", show=False, priority=True, id="stages.choose_stage"),
        Binding("ctrl+n", "add_dataset", "+Dataset", id="stages.add_dataset"),
        Binding("ctrl+r", "remove_dataset", "-Dataset", id="stages.remove_dataset"),
        Binding("ctrl+o", "preview", "Examples", id="stages.preview"),
        Binding("ctrl+b", "sweep", "Sweep", id="stages.sweep"),  # ctrl+w deletes a word in a field
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stage = STAGES[0]

    def compose(self) -> ComposeResult:
        yield NavBar("stages", self.project.name if self.project else "no project")
        with Horizontal(id="stage-bar"):
            yield Label("stage", classes="field-label")
            yield StageSelect(self.stage, id="stage-select")
        with Horizontal(id="stage-main"):
            with FormScroll(id="stage-body"):
                if self.project is not None:
                    with ContentSwitcher(initial=f"form-{self.stage}", id="stage-switcher"):
                        yield self._form(self.stage)
            yield Static("", id="stage-summary")  # shown where the terminal is wide enough (on_resize)
        yield Static("\n".join(map(str, self.load_problems)), id="stage-problems", classes="problems")
        yield Static("", id="stage-preview")
        yield FieldHelp(id="field-help")
        yield Footer()

    def _form(self, stage: str) -> StageForm:
        dirs = [
            p.relative_to(self.project.root).as_posix() for run in list_runs(self.project) for p in checkpoints(run)
        ]
        return StageForm(stage, self.project.stage(stage), dirs[::-1], id=f"form-{stage}")

    def forms(self) -> list[StageForm]:
        return list(self.query(StageForm))

    def current_form(self) -> StageForm:
        return self.query_one(f"#form-{self.stage}", StageForm)

    def loaded(self) -> None:
        if self.project is not None:
            self.call_after_refresh(self.check)

    @property
    def dirty(self) -> bool:
        if self.project is None:
            return False
        saved = project_to_dict(self.project)
        return any(form.table() != (saved[form.stage], []) for form in self.forms())

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.query_one("#stage-select", StageSelect), "expanded", self._menu_closed, init=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose_stage":
            return self.editable.is_set() and self.query_one("#stage-select", StageSelect).menu_open
        return super().check_action(action, parameters)

    def action_choose_stage(self) -> None:
        """Enter in the stage menu: the keys typed after it wait until the stage's form is shown.

        The menu picks the stage it highlights once it has read the letters typed into it before
        (a priority binding runs ahead of them, so the pick waits its turn in the menu's queue)."""
        self.editable.clear()  # set again once the stage's form is shown, or once the menu closed on this stage
        menu = self.app.focused

        def pick() -> None:
            if menu.highlighted is None:  # nothing to pick: nothing to wait for
                self.editable.set()
            else:
                menu.action_select()

        menu.call_later(pick)

    def _menu_closed(self, expanded: bool) -> None:
        select = self.query_one("#stage-select", StageSelect)
        if not expanded and select.value == self.stage:  # no switch to wait for
            self.editable.set()

    async def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "stage-select" or event.value == self.stage or self.project is None:
            return
        try:
            self.stage = str(event.value)
            switcher = self.query_one(ContentSwitcher)
            if not self.query(f"#form-{self.stage}"):
                switcher.current = None  # while the new form mounts, not the last stage's values under its name
                await switcher.add_content(self._form(self.stage))
            switcher.current = f"form-{self.stage}"
            self.check()  # now: the rows the new form hides are hidden in its first frame
        finally:
            self.editable.set()

    async def on_field_set_changed(self, event: FieldSet.Changed) -> None:
        form = next(a for a in event.field_set.ancestors if isinstance(a, StageForm))
        if event.name == "name" and event.field_set.table in NAMED:
            await form.replace_named(event.field_set)
        self.check_soon()

    def check(self) -> list[Problem]:
        """Show every problem under its row (the rest below the form), the shares and the preview."""
        if self.project is None:
            return self.load_problems
        edited, problems = {}, []
        for form in self.forms():
            form.show_rows()
            edited[form.stage], bad = form.table()
            problems += bad
        saved = project_to_dict(self.project)
        if not problems:  # the edits parse: the project they make, and its rules' problems, in one pass
            project, problems = checked({**saved, **edited}, self.project.root)
        claimed = [p for form in self.forms() for s in form.sets() for p in s.show_problems(problems)]
        self.query_one("#stage-problems", Static).update("\n".join(str(p) for p in problems if p not in claimed))
        self.current_form().update_shares()
        sets = set_overrides(saved[self.stage], edited[self.stage], self.stage)
        self.query_one("#stage-preview", Static).update(run_command(self.project.root, self.stage, sets))
        summary = "\n".join([f"a {self.stage} run", "", *stage_lines(project, self.stage)]) if not problems else ""
        self.query_one("#stage-summary", Static).update(summary or "fix the problems to see what a run amounts to")
        self.mark_modified()
        return problems

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")

    def action_pick_stage(self) -> None:
        """Open the stage picker: type the stage's first letters, then Enter."""
        select = self.query_one("#stage-select", StageSelect)
        select.action_show_overlay()
        self.set_focus(select.query_one("SelectOverlay"), scroll_visible=False)  # now: keys typed next go there

    async def action_add_dataset(self) -> None:
        form = self.current_form()
        await form.set_datasets(form.dataset_tables() + [project_to_dict(DatasetConfig())])
        form.query(FieldSet).last().rows["path"].editor.focus()
        self.check()

    async def action_remove_dataset(self) -> None:
        form = self.current_form()
        index = form.dataset_index(self.focused)
        if index is None:
            self.notify("Move to a dataset's fields first, then Ctrl+R removes it.", severity="warning")
            return
        tables = form.dataset_tables()
        await form.set_datasets(tables[:index] + tables[index + 1 :])
        self.check()

    def action_save(self) -> None:
        problems = self.check()
        if problems:
            self.notify(f"Not saved: {len(problems)} problem(s) to fix first.", severity="error")
            return
        try:
            project = save_sections(self.project.root, {form.stage: form.table()[0] for form in self.forms()})
        except LLMLabError as error:
            self.notify(str(error), severity="error")
            return
        self.saved(project)
        for form in self.forms():
            form.config = project.stage(form.stage)
        self.check()
        self.notify(f"Saved {project.file}")

    def action_sweep(self) -> None:
        """Ask for a grid, check every member's settings, then start the sweep (llmlab_tui/sweeps.py)."""
        if self.project is None:
            return
        if self.dirty:
            self.notify("Save first (Ctrl+S): a sweep trains the saved project.", severity="warning")
            return
        root, stage = self.project.root, self.stage

        def accept(text: str, _: str) -> None:
            sweep = start_sweep(root, stage, text)
            self.notify(f"Sweep {sweep} started: F4 follows the member training when shown, F7 compares them.")

        placeholder = "model.positional_encoding=rope,alibi pretrain.lr=1e-3,3e-3"
        self.app.push_screen(NameScreen(f"Sweep {stage}: KEY=V1,V2 ... then Enter", accept, placeholder=placeholder))

    def action_preview(self) -> None:
        """The stage's first examples, as edited here (saved or not), in a dialog."""
        if self.project is None:
            return
        table, problems = self.current_form().table()
        if problems:
            self.notify("Fix the stage's problems first.", severity="error")
            return
        self.app.push_screen(PreviewScreen(self.project.root, self.stage, table))
