"""Every metric the daemon exports, declared in one place on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from synlearner.learner.methods import REGISTRY

# Task phases run from sub-second (validation) to hours (training a large model).
DURATION_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
SEARCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MAX_TASK_LABELS = 256  # latest accuracy is exported for at most this many tasks
# the last synthesis task's figures: gauge name -> (key in `LearnOutcome.synthesis`, help)
SYNTHESIS_GAUGES = {
    "eval_agreement_ratio": ("eval_agreement", "Label agreement of the last synthesis task's "
                             "evaluation texts"),
    "eval_pairwise_distance_ratio": ("eval_pairwise_distance", "Mean pairwise cosine distance "
                                     "of the last synthesis task's evaluation texts"),
    "eval_distinct_2_ratio": ("eval_distinct_2", "Distinct word bigrams of the last synthesis "
                              "task's evaluation texts"),
}


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.tasks_received = Counter(
            "synlearner_tasks_received_total", "Task messages consumed from the stream", registry=r)
        self.tasks_learned = Counter(
            "synlearner_tasks_learned_total", "Tasks learned and committed", registry=r)
        self.tasks_duplicate = Counter(
            "synlearner_tasks_duplicate_total",
            "Messages acknowledged without training (same task id and content)", registry=r)
        self.tasks_failed = Counter(
            "synlearner_tasks_failed_total", "Valid tasks that could not be learned", registry=r)
        self.tasks_dead_lettered = Counter(
            "synlearner_tasks_dead_lettered_total", "Invalid messages sent to the dead letters",
            registry=r)
        self.dead_letters = Counter(
            "synlearner_dead_letters_total", "Messages dead-lettered, by reason", ["reason"],
            registry=r)
        self.input_truncated = Counter(
            "synlearner_input_truncated_total",
            "Content cut to fit the limits (fields, examples sampled away, inputs cut at the "
            "model's max_length)", ["what"], registry=r)
        self.backoffs = Counter(
            "synlearner_backoffs_total",
            "Retries after a failure that was not the message's fault", ["operation"], registry=r)
        self.stream_held = Gauge(
            "synlearner_stream_held", "1 while consumption is held, backing off a failure",
            registry=r)
        self.task_duration = Histogram(
            "synlearner_task_phase_duration_seconds", "Wall time of each phase of a task",
            ["phase"], buckets=DURATION_BUCKETS, registry=r)
        self.train_examples = Counter(
            "synlearner_train_examples_total", "New-task examples trained on", registry=r)
        self.replay_examples = Counter(
            "synlearner_replay_examples_total", "Replayed examples recalled from memory",
            registry=r)
        self.train_steps = Counter(
            "synlearner_train_steps_total", "Optimizer steps taken", registry=r)
        self.train_loss = Gauge(
            "synlearner_train_loss", "Smoothed training loss of the task being learned", registry=r)
        self.memory_records = Gauge(
            "synlearner_memory_records", "Records in the experience memory", ["kind"], registry=r)
        self.memory_tasks = Gauge(
            "synlearner_memory_tasks", "Tasks known to the memory", registry=r)
        self.memory_search = Histogram(
            "synlearner_memory_search_duration_seconds", "Latency of memory recall",
            ["operation"], buckets=SEARCH_BUCKETS, registry=r)
        self.acc = Gauge("synlearner_acc_ratio", "Average accuracy over seen tasks (ACC)",
                         registry=r)
        self.bwt = Gauge("synlearner_bwt_ratio", "Backward transfer (BWT)", registry=r)
        self.fwt = Gauge("synlearner_fwt_ratio", "Forward transfer (FWT)", registry=r)
        self.forgetting = Gauge(
            "synlearner_forgetting_ratio", "Average forgetting over seen tasks", registry=r)
        self.task_agnostic = Gauge(
            "synlearner_task_agnostic_ratio",
            "Transfer metrics of the task-agnostic setting (no task id: routed or consolidated)", ["metric"],
            registry=r)
        self.task_accuracy = Gauge(
            "synlearner_task_accuracy_ratio", "Latest accuracy of each learned task",
            ["eval_task"], registry=r)
        self.tasks_seen = Gauge(
            "synlearner_tasks_seen", "Tasks in the accuracy matrix", registry=r)
        self.stream_pending = Gauge(
            "synlearner_stream_pending_messages", "Messages waiting in the stream", registry=r)
        self.busy = Gauge(
            "synlearner_busy", "1 while a task is being learned", registry=r)
        self.stream_consumed = Counter(
            "synlearner_stream_consumed_total", "Messages handed out by the stream source",
            registry=r)
        self.stream_committed = Counter(
            "synlearner_stream_committed_total", "Offsets committed (Kafka)", registry=r)
        self.stream_commit_failures = Counter(
            "synlearner_stream_commit_failures_total",
            "Offset commits that failed (rebalance or broker outage)", registry=r)
        self.stream_rebalances = Counter(
            "synlearner_stream_rebalances_total", "Consumer group rebalances (partitions assigned)",
            registry=r)
        self.stream_lag = Gauge(
            "synlearner_stream_lag_messages", "Messages behind the end of each assigned partition",
            ["partition"], registry=r)
        self.publish_to_learned = Histogram(
            "synlearner_publish_to_learned_seconds",
            "From the producer's timestamp to the task's commit", buckets=DURATION_BUCKETS,
            registry=r)
        self.stream_dead_lettered = Counter(
            "synlearner_stream_dead_lettered_total",
            "Dead letters the source confirmed written (Kafka: acknowledged by the broker)",
            registry=r)
        self._source_counters = {
            "consumed": self.stream_consumed, "committed": self.stream_committed,
            "dead_lettered": self.stream_dead_lettered,
            "commit_failed": self.stream_commit_failures, "rebalance": self.stream_rebalances,
        }
        self.synthetic_examples = Counter(
            "synlearner_synthetic_examples_total",
            "Synthetic examples written for classification tasks that ask for them, and the "
            "ones the filter kept", ["outcome"], registry=r)
        self.synthesis = {
            name: Gauge(f"synlearner_synthesis_{name}", help_, registry=r)
            for name, (_, help_) in SYNTHESIS_GAUGES.items()}
        self.last_task_timestamp = Gauge(
            "synlearner_last_task_timestamp_seconds", "When the last task was committed",
            registry=r)
        self.adapters_missing = Gauge(
            "synlearner_adapters_missing", "Committed adapters whose folder was missing at start",
            registry=r)
        self.job_last_run = Gauge(
            "synlearner_job_last_run_timestamp_seconds", "When each scheduled job last finished",
            ["name"], registry=r)
        self.job_duration = Gauge(
            "synlearner_job_duration_seconds", "How long each scheduled job's last run took",
            ["name"], registry=r)
        self.job_runs = Counter(
            "synlearner_job_runs_total", "Runs of each scheduled job", ["name"], registry=r)
        self.job_failures = Counter(
            "synlearner_job_failures_total", "Runs of each scheduled job that failed", ["name"],
            registry=r)
        self.drift = Gauge(
            "synlearner_drift_max_drop_ratio",
            "Largest drop of a task's accuracy, re-evaluated when idle, below its recorded score",
            registry=r)
        # each learning method's own metrics (`learner/method.py`), set from its figures
        self.methods = {name: observe for name, method in REGISTRY.items()
                        if (observe := method.metrics(r)) is not None}
        self.config_reloads = Counter(
            "synlearner_config_reloads_total", "SIGHUP config reloads, by outcome", ["outcome"],
            registry=r)

    def on_event(self, event: str, value: float = 1.0, partition: str | None = None) -> None:
        """The stream source's events (a `SourceListener`); may run on its thread."""
        if event == "lag" and partition is not None:
            self.stream_lag.labels(partition=partition).set(value)
        elif event in self._source_counters:
            self._source_counters[event].inc(value)

    def set_transfer(self, summary: dict[str, float], latest: dict[str, float]) -> None:
        self.acc.set(summary["acc"])
        self.bwt.set(summary["bwt"])
        self.fwt.set(summary["fwt"])
        self.forgetting.set(summary["forgetting"])
        self.tasks_seen.set(len(latest))
        self.task_accuracy.clear()  # only the latest tasks keep a series
        for column, score in list(latest.items())[-MAX_TASK_LABELS:]:
            self.task_accuracy.labels(eval_task=column).set(score)

    def set_synthesis(self, figures: dict[str, float]) -> None:
        """The last synthesis task's figures: the label agreement and diversity of its
        evaluation texts; or the synthetic examples a classification task asked for
        (written, kept)."""
        if "generated" in figures:
            self.synthetic_examples.labels(outcome="generated").inc(figures["generated"])
            self.synthetic_examples.labels(outcome="kept").inc(figures["kept"])
            return
        for name, (key, _) in SYNTHESIS_GAUGES.items():
            if key in figures:
                self.synthesis[name].set(figures[key])

    def set_task_agnostic(self, summary: dict[str, float]) -> None:
        for name in ("acc", "bwt", "fwt", "forgetting"):
            self.task_agnostic.labels(metric=name).set(summary[name])

    def set_memory(self, counts: dict[str, int]) -> None:
        self.memory_records.labels(kind="experience").set(counts["experience"])
        self.memory_records.labels(kind="error").set(counts["error"])
        self.memory_tasks.set(counts["tasks"])
