import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ExitError } from '../../src/errors.ts'
import { GIB } from '../../src/units.ts'
import { findGpu, findHardware, listGpus, SKUS } from '../../src/catalog/index.ts'

const exitMatching = (re: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ExitError, `expected ExitError, got ${String(err)}`)
  assert.equal(err.exitCode, 2)
  assert.match(err.message, re)
  return true
}

test('GPU names resolve with any case, vendor prefix, dashes or spaces', () => {
  const cases: [string, string][] = [
    ['A100-80GB', 'A100-80GB'],
    ['a100', 'A100-80GB'],
    ['NVIDIA A100-SXM4-80GB', 'A100-80GB'],
    ['nvidia a100 80gb pcie', 'A100-80GB'],
    ['A100_40GB', 'A100-40GB'],
    ['h100', 'H100-80GB'],
    ['NVIDIA H100 80GB HBM3', 'H100-80GB'],
    ['H100 NVL', 'H100-NVL-94GB'],
    ['h200', 'H200'],
    ['Tesla T4', 'T4'],
    ['NVIDIA GeForce RTX 4090', 'RTX-4090'],
    ['rtx4090', 'RTX-4090'],
    ['RTX 6000 Ada Generation', 'RTX-6000-Ada'],
    ['a6000', 'RTX-A6000'],
    ['l40s', 'L40S'],
    ['A10G', 'A10G'],
    ['A10', 'A10'],
    ['AMD Instinct MI300X', 'MI300X'],
  ]
  for (const [input, name] of cases) assert.equal(findGpu(input).name, name, input)
})

test('memory is the nominal GiB capacity', () => {
  assert.equal(findGpu('A100-80GB').memoryBytes, 80 * GIB)
  assert.equal(findGpu('H100-NVL-94GB').memoryBytes, 94 * GIB)
  assert.equal(findGpu('H200').memoryBytes, 141 * GIB)
  assert.equal(findGpu('T4').memoryBytes, 16 * GIB)
})

test('bf16 support follows the architecture, and bf16 throughput is 0 exactly when unsupported', () => {
  for (const gpu of listGpus()) {
    assert.equal(gpu.bf16, gpu.bf16Tflops > 0, gpu.name)
    if (/^\d+\.\d+$/.test(gpu.computeCapability)) {
      assert.equal(gpu.bf16, Number(gpu.computeCapability) >= 8, `${gpu.name}: bf16 needs compute capability 8.0`)
    }
    assert.ok(gpu.bandwidthGBps > 0 && gpu.memoryBytes > 0, gpu.name)
  }
  assert.equal(findGpu('V100').bf16, false)
  assert.equal(findGpu('T4').bf16, false)
})

test('unknown GPUs suggest the nearest name', () => {
  assert.throws(() => findGpu('A1000'), exitMatching(/^unknown GPU "A1000": did you mean "A100-80GB"\?/))
  assert.throws(() => findGpu('rtx 4080'), exitMatching(/did you mean "RTX-4090"\?/))
  assert.throws(() => findGpu('TPU v5e'), exitMatching(/^unknown GPU "TPU v5e"$/))
})

test('Azure and AWS instance types give the GPU and the count', () => {
  const cases: [string, string, number][] = [
    ['Standard_NC24ads_A100_v4', 'A100-80GB', 1],
    ['Standard_NC48ads_A100_v4', 'A100-80GB', 2],
    ['Standard_NC96ads_A100_v4', 'A100-80GB', 4],
    ['Standard_ND96asr_A100_v4', 'A100-40GB', 8],
    ['Standard_ND96amsr_A100_v4', 'A100-80GB', 8],
    ['Standard_NC40ads_H100_v5', 'H100-NVL-94GB', 1],
    ['Standard_ND96isr_H100_v5', 'H100-80GB', 8],
    ['Standard_ND96isr_H200_v5', 'H200', 8],
    ['Standard_NV36ads_A10_v5', 'A10', 1],
    ['Standard_NC6s_v3', 'V100-16GB', 1],
    ['Standard_NC64as_T4_v3', 'T4', 4],
    ['p3dn.24xlarge', 'V100-32GB', 8],
    ['p4d.24xlarge', 'A100-40GB', 8],
    ['g5.12xlarge', 'A10G', 4],
    ['g6.xlarge', 'L4', 1],
  ]
  for (const [sku, gpu, count] of cases) {
    const hw = findHardware(sku)
    assert.deepEqual([hw.gpu.name, hw.count, hw.sku], [gpu, count, sku], sku)
  }
  assert.equal(findHardware('standard_nc24ads_a100_v4').sku, 'Standard_NC24ads_A100_v4')
})

test('a GPU name is one GPU of that model', () => {
  const hw = findHardware('A100-80GB')
  assert.equal(hw.gpu.name, 'A100-80GB')
  assert.equal(hw.count, 1)
  assert.equal(hw.sku, undefined)
})

test("every generated SKU resolves, and its per-GPU memory is the instance's", () => {
  assert.ok(SKUS.length >= 60)
  for (const s of SKUS) {
    const hw = findHardware(s.sku)
    assert.equal(hw.gpu.memoryBytes, s.gpuMemoryGiB * GIB, s.sku)
    assert.equal(hw.count, s.count, s.sku)
  }
  // Azure Stack Edge NK6 exposes half a T4
  assert.equal(findHardware('Standard_NK6').gpu.memoryBytes, 8 * GIB)
})

test('unknown instance types suggest the nearest SKU', () => {
  assert.throws(() => findHardware('Standard_NC24ads_A100_v5'), exitMatching(/^unknown GPU or instance type "Standard_NC24ads_A100_v5": did you mean "Standard_NC24ads_A100_v4"\?/))
  assert.throws(() => findHardware('g5.12xlarg'), exitMatching(/did you mean "g5\.12xlarge"\?/))
})
