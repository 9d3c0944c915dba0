#!/usr/bin/env bash
# Issue 9 on the real servers: the CLI end-to-end suites, the HTTP trigger and the status page with every
# Project's store on PostgreSQL and on MariaDB (tests/conftest.py's --store: a fresh schema or database
# per test; tests about the SQLite file itself are marked sqlite_only and skip there). The in-process
# store tests already run on all three engines in scripts/test (conftest's any_db).
#
# Budget: .ci/run must stay well under 15 minutes on 2 cores (about 9 with this step, since the main
# suite runs in two workers). The two engines run at the same time, each in its own pytest with its own
# --basetemp (the suites mostly wait on real processes, ticks and time limits). Every queue and
# periodic test of these modules runs; the few left out below check what never reaches the store
# (the CLI's arguments, formatting and pure verdicts, the HTTP server's routing and clients) and run
# on SQLite in scripts/test.
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
