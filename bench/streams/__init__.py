"""The generated benchmark streams, deterministic for a seed, no external data: `bundled`
(the demo's seven tasks and six more), `hard` (built from `hard_reviews`, `hard_texts` and
`hard_pairs`), `generative` (exact-answer generation tasks) and `synthesis` (the hard
stream's review templates as synthesis tasks). The demo stream itself is the service's
(`synlearner.daemon.tools.demo`)."""
