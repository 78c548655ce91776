# Sourced by the ensure_*venv.sh scripts: find_python310 prints a Python 3.10
# interpreter (lava-nc 0.10 and lava-dl 0.6 need exactly 3.10). The pyenv shim
# `python3.10` may fail, so the pyenv versions folder is searched too.
find_python310() {
    local candidates=(python3.10)
    if command -v pyenv >/dev/null 2>&1; then
        candidates+=("$(pyenv root)"/versions/3.10*/bin/python3.10)
    fi
    candidates+=("$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10)
    for py in "${candidates[@]}"; do
        if "$py" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
            echo "$py"; return 0
        fi
    done
    return 1
}
