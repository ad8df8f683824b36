#!/usr/bin/env bash
# spawn.sh: the per-session launcher for Anthropic's `ant beta:worker poll --on-work ./spawn.sh`.
#
# ant runs this once per claimed work item with ANTHROPIC_WORK_ID, ANTHROPIC_ENVIRONMENT_ID,
# ANTHROPIC_SESSION_ID and ANTHROPIC_ENVIRONMENT_KEY set and the work item's JSON (with its
# secret) on stdin; it waits for the script, logs a non-zero exit, and on shutdown sends
# SIGTERM, then SIGKILL 30 s later. This script:
#   - refuses to start when ANTHROPIC_API_KEY is set (it must never get near a sandbox);
#   - keeps only an allow-list of variables (the ANTHROPIC_* ones of the environment key and
#     the work item, the OMNIRUN_* settings, PATH, HOME, LANG) and drops every other one;
#   - replaces itself (exec) with `python3 -m omnirun_claude_worker handle-item`, which reads
#     the work item (and its secret) from the same stdin, resumes or creates the session's
#     sandbox, runs the session's tools in it and blocks until the session's turn is over;
#     SIGTERM reaches it directly: it stops within 20 s (OMNIRUN_CLAUDE_DRAIN_SECONDS) and
#     pauses the sandbox (or ends it), well inside ant's 30 s.
# It prints no secret: only the session and work ids.
#
# Settings (environment): OMNIRUN_API_URL, OMNIRUN_API_KEY, OMNIRUN_CLAUDE_TEMPLATE
# (claude-agent), OMNIRUN_CLAUDE_MAX_SESSIONS (the cap: at it, the session waits for a slot
# while its lease is kept), OMNIRUN_CLAUDE_ALLOW_DOMAINS, OMNIRUN_CLAUDE_OUTPUTS_DIR, ...
# (docs/claude-managed-agents.md); OMNIRUN_CLAUDE_PYTHON: the interpreter that has the
# omnirun_claude_worker package (default python3).
set -euo pipefail

if [[ -n "${ANTHROPIC_API_KEY:-}" ]]; then
  echo "spawn.sh: refusing to start: ANTHROPIC_API_KEY is set. Only the environment key" \
       "(ANTHROPIC_ENVIRONMENT_KEY) may be given to session workers; unset ANTHROPIC_API_KEY." >&2
  exit 78
fi
for required in ANTHROPIC_WORK_ID ANTHROPIC_ENVIRONMENT_ID ANTHROPIC_SESSION_ID; do
  if [[ -z "${!required:-}" ]]; then
    echo "spawn.sh: $required is not set (run me through: ant beta:worker poll --on-work ./spawn.sh)" >&2
    exit 64
  fi
done
if [[ -z "${OMNIRUN_API_KEY:-}" ]]; then
  echo "spawn.sh: OMNIRUN_API_KEY is not set" >&2
  exit 64
fi

python="${OMNIRUN_CLAUDE_PYTHON:-python3}"
echo "spawn.sh: session ${ANTHROPIC_SESSION_ID} work ${ANTHROPIC_WORK_ID}" >&2

# Only these reach the session's worker; everything else is unset here (not passed on a
# command line, where other users could read it).
while IFS= read -r name; do
  case "$name" in
    ANTHROPIC_WORK_ID|ANTHROPIC_ENVIRONMENT_ID|ANTHROPIC_SESSION_ID|ANTHROPIC_ENVIRONMENT_KEY) ;;
    ANTHROPIC_WORK_SECRET|ANTHROPIC_BASE_URL) ;;
    OMNIRUN_API_URL|OMNIRUN_API_KEY|OMNIRUN_CLAUDE_*) ;;
    PATH|HOME|LANG|LC_ALL|TZ) ;;
    *) unset "$name" 2>/dev/null || true ;;
  esac
done < <(compgen -e)

exec "$python" -m omnirun_claude_worker handle-item
