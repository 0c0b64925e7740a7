# Sourced by book.sh, test.sh and train_zoo.sh: install what is missing, then point RADAPT_DATA at the data.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
RADAPT_DATA=${RADAPT_DATA:-../shared/data}
# kernels run in other folders: make the path absolute
export RADAPT_DATA=$(cd "$RADAPT_DATA" 2>/dev/null && pwd || echo "$RADAPT_DATA")
