package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// printTable prints the seven figures with their targets.
func printTable(w io.Writer, o options, r results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	conc := o.workers * o.concurrency
	fmt.Fprintf(tw, "\nfigure\tresult\ttarget\thow it was measured\n")
	row := func(name, result, target, how string) { fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, result, target, how) }
	row("1. peer design", fmt.Sprintf("%.0f pre-saves/s at %.2f ms CPU, %.2f calls each (no-op asynq: %.0f tasks/s)",
		r["peer_per_s"], r["peer_cpu_ms_per_presave"], r["peer_calls_per_presave"], r["ceiling_per_s"]), "-",
		fmt.Sprintf("%d pre-saves as one asynq task each holding its tokens, presave's clients, a check before each write, a refresh, no database; %d processes × %d", o.n, o.workers, o.concurrency))
	row("2. release-day drain", fmt.Sprintf("%.0f pre-saves/s (%.2f × peer design; %.2f × no-op)", r["drain_per_s"], r["drain_vs_peer"], r["drain_ratio"]), "≥ 0.5 × peer design",
		fmt.Sprintf("%d pre-saves (half per provider) due at one instant, %d workers × %d, due → last done", o.n, o.workers, o.concurrency))
	row("3. with provider latency", fmt.Sprintf("%.0f calls/s of %.0f (%.2f)", r["latency_per_s"], r["latency_bound_per_s"], r["latency_ratio"]), "≥ 0.85 × bound",
		fmt.Sprintf("fake latency %s; bound = concurrency %d ÷ latency; calls counted at the fake", o.latency, conc))
	row("4. Redis memory", fmt.Sprintf("%+.2f MB for %.0f future pre-saves; %.0f B/task in window", r["redis_future_bytes"]/1e6, r["future_presaves"], r["redis_bytes_per_task"]), "< 10 MB",
		"used_memory before/after seeding pre-saves due in 7 days, relay running; 10,000 scheduled tasks for bytes/task")
	row("5. consent ingest", fmt.Sprintf("%.0f callbacks/s", r["ingest_per_s"]), "≥ 1000/s",
		fmt.Sprintf("%d OAuth callbacks through the API, %d at a time (state, code exchange, seal, transaction, enqueue)", o.n, width))
	row("6. rate-limit adherence", fmt.Sprintf("%.2f of %.0f req/s, %.2f%% answered 429", r["rate_adherence"], r["rate_limit_per_s"], 100*r["rate_429_share"]), "≥ 0.9, < 1% 429",
		"fake limits the Spotify app to R req/s (burst 0.2 s); workers configured to R; calls the fake accepted between the first and the last ÷ that time ÷ R")
	row("7. release-day lateness", fmt.Sprintf("p50 %.2f s, p99 %.2f s", r["lateness_p50_s"], r["lateness_p99_s"]), "p50 < 1 s, p99 < 3 s",
		"run 2: due_at → the task starting the pre-save (started_at), every pre-save")
	tw.Flush()
	fmt.Fprintf(w, "provider requests per pre-save (run 2, every access token expired as on a real release day, refresh and revoke included): %.2f (the APIs' minimum: %.2f)\n",
		r["calls_per_presave"], r["calls_per_presave_min"])
	fmt.Fprintf(w, "Apple Music drain (%.0f pre-saves adding the album to the library, each checked, written and read back): %.0f pre-saves/s, %.2f provider requests each (the fewest: 3), lateness p50 %.2f s, p99 %.2f s\n",
		r["applemusic_n"], r["applemusic_drain_per_s"], r["applemusic_calls_per_presave"], r["applemusic_lateness_p50_s"], r["applemusic_lateness_p99_s"])
	fmt.Fprintf(w, "per pre-save (run 2): PostgreSQL statements %.2f (target ≤ 0.2), transactions %.2f; Redis commands of our own %.2f (target ≤ 2), all (asynq's too) %.1f\n",
		r["pg_statements_per_presave"], r["pg_transactions_per_presave"], r["redis_commands_per_presave"], r["redis_server_commands_per_presave"])
	fmt.Fprintf(w, "periodic services' statements after run 2 (history %.0f): slowest %.1f ms (target < 50 ms): revive %.1f, OAuth states %.1f, holds %.1f, tokens %.1f, revocations %.1f, rescue %.1f\n",
		r["history"], r["sweep_max_ms"], r["sweep_revive_ms"], r["sweep_oauth_states_ms"], r["sweep_holds_ms"], r["sweep_tokens_ms"],
		r["sweep_revocations_ms"], r["sweep_rescue_ms"])
	// Where the time goes: everything shares this machine's cores, so
	// these bound figures 2, 5 and 7 at about cores ÷ CPU per unit.
	for _, l := range []string{cpuLine(r, "cpu_ms_per_presave", "pre-save (run 2)"), cpuLine(r, "peer_cpu_ms_per_presave", "pre-save of the peer design (figure 1)"),
		cpuLine(r, "cpu_ms_per_callback", "callback (figure 5)")} {
		if l != "" {
			fmt.Fprintln(w, l)
		}
	}
}
