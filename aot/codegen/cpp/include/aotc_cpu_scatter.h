// aotc_cpu_scatter.h: CPU extern kernels for the scatter family (see aot/codegen/cpp/extern_scatter.py).
#pragma once

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"
