// aotc_cpu_scan.h: CPU extern kernels for the scan family (see aot/codegen/cpp/extern_scan.py).
#pragma once

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"
