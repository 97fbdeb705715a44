"""Resilience: circuit breakers (:mod:`.breaker`), the ``pg`` breaker's error classes and the
watchdog that cancels database work (:mod:`.postgres`), outbound HTTP behind breakers
(:mod:`.http`), the serving lifecycle and drain gate (:mod:`.lifecycle`), a fault-injecting
TCP proxy for chaos tests (:mod:`.chaos_proxy`), and the app wiring (:mod:`.wiring`)."""
