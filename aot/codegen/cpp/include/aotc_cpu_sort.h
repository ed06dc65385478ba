// aotc_cpu_sort.h: CPU extern kernels for the sort family (see aot/codegen/cpp/extern_sort.py).
#pragma once

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"
