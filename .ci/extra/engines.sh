#!/usr/bin/env bash
# Issue 9 on the real servers: the CLI end-to-end suites, the HTTP trigger and the status page with every
# Project's store on PostgreSQL and on MariaDB (tests/conftest.py's --store: a fresh schema or database
# per test; tests about the SQLite file itself are marked sqlite_only and skip there). The in-process
# store tests already run on all three engines in scripts/test (conftest's any_db).
#
# Budget: .ci/run must stay under 15 minutes on 2 cores and this step may add about 2. A server store
# costs about twice SQLite's time per CLI call (the driver's import and its connection), so the whole
# set (~90 tests an engine) does not fit. The two engines run at the same time, each in its own pytest
# with its own --basetemp (the suites mostly wait on real processes, ticks and time limits), and the
# tests below are left out here: each still runs on SQLite in scripts/test, and what they check does
# not reach the store, or a sibling kept here reaches the same store path.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
MODULES=(tests/test_tick.py tests/test_queue_e2e.py tests/test_schedule_e2e.py tests/test_catchup_e2e.py
         tests/test_jobopts_e2e.py tests/test_context_e2e.py tests/test_history.py tests/test_retention.py
         tests/test_status.py tests/test_web.py tests/test_web_page.py tests/test_skew.py)
LEFT_OUT=(
    # the CLI's own paths and arguments, before any store
    tests/test_tick.py::test_force_unknown_job_is_a_usage_error
    tests/test_tick.py::test_launcher_works_by_absolute_path_from_another_directory
    tests/test_tick.py::test_config_from_environment_variable
    tests/test_jobopts_e2e.py::test_bad_timezone_is_one_line
    # time zones and rules: pure schedule decisions; Berlin's two DST changes stay
    tests/test_schedule_e2e.py::test_hourly_on_lord_howe_when_clocks_go_back_30_minutes
    tests/test_jobopts_e2e.py::test_daily_at_and_weekly_day_in_their_own_zone
    tests/test_catchup_e2e.py::test_jitter_spreads_runs_deterministically
    # the supervisor's kills at the limit (a job's own, one blocking signals, one spinning 2 s of CPU);
    # a periodic run cut at the limit on a server stays in test_context_e2e (it resumes and completes)
    # and test_tick's kill of a run whose end never reached the supervisor
    tests/test_jobopts_e2e.py::test_per_job_time_limit_is_hard
    tests/test_tick.py::test_job_blocked_in_c_code_is_killed_at_the_limit
    tests/test_tick.py::test_infinite_loop_is_cut_at_the_limit_and_the_next_job_runs_next_tick
    # handler-side variants of the README's resume pattern, which stays (with resume_later and a job's)
    tests/test_context_e2e.py::test_example_counter_resumes_across_ticks_with_offset_and_state
    tests/test_context_e2e.py::test_except_exception_around_the_checkpoint_does_not_swallow_the_stop
    # formatting, and pure verdicts
    tests/test_history.py::test_table_is_aligned_and_shows_local_times
    tests/test_status.py::test_verdicts
    tests/test_web_page.py::test_refresh_after
    tests/test_web_page.py::test_chromium_missing_is_one_clear_skip_line
    # the HTTP server's routing, clients and logging, the same whatever the store
    tests/test_web.py::test_without_a_token_the_trigger_and_page_are_off
    tests/test_web.py::test_unknown_path_404_wrong_method_405_big_body_413
    tests/test_web.py::test_prefix_moves_every_route
    tests/test_web.py::test_module_level_application_reads_run_cron_config_and_hides_config_errors
    tests/test_web.py::test_wget_line_for_an_external_cron_service
    tests/test_web.py::test_curl_with_bearer_header
    tests/test_web.py::test_serve_log_file_never_holds_the_token
    # the lock file every host keeps locally (test_another_tick_holding_the_lock_is_409_at_once stays)
    tests/test_web.py::test_run_while_a_cli_tick_runs_is_409_even_within_min_interval
    tests/test_web_page.py::test_actions_need_the_page_cookie_its_csrf_token_and_this_site
    # the page's live progress (8 s of a slow handler); the page with data and its actions stay
    tests/test_web_page.py::test_a_running_tick_its_run_and_live_progress
    tests/test_web_page.py::test_a_running_server_loads_the_jobs_module_again_when_it_changes
    tests/test_web_page.py::test_the_page_looks_again_only_while_something_will_change_soon
)
deselect=()
for test in "${LEFT_OUT[@]}"; do
    deselect+=(--deselect "$test")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
engines=(postgresql mysql)
pids=()
for engine in "${engines[@]}"; do
    "$python" -m pytest -q -p no:cacheprovider --store="$engine" --basetemp="$work/$engine" "$@" \
        "${deselect[@]}" "${MODULES[@]}" >"$work/$engine.log" 2>&1 &
    pids+=($!)
done
failed=0
for i in "${!engines[@]}"; do
    if wait "${pids[$i]}"; then result=passed; else result=FAILED; failed=1; fi
    echo "== engines.sh: --store=${engines[$i]}: $result"
    cat "$work/${engines[$i]}.log"
done
exit "$failed"
