# Sourced by the GPU scripts on the GPU machine: puts the CUDA libraries of the machine's
# Python wheels (nvidia-*) on LD_LIBRARY_PATH, where the CUDA build of ddaebm finds them.
site=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null || true)
for d in "$site"/nvidia/cu13/lib "$site"/nvidia/*/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH
