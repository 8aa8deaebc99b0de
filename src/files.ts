/**
 * Files a user names: bounded reads and checked output paths. Every file Headroom reads on a
 * user's word goes through `readBoundedFile`, so a FIFO, /dev/zero or a multi-gigabyte file
 * ends in one line naming the path instead of a hang or an out-of-memory crash; every file or
 * directory it writes is checked first by `checkOutputFile` / `checkOutputDir`, so a bad
 * output path is one line with the fix, exit 1, never a stack trace or a spin on /proc.
 */
import { constants } from 'node:fs'
import { access, open, realpath, stat, statfs, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { ExitError } from './errors.ts'

const MIB = 1024 * 1024

/** A tuning config is a few KiB; KAITO's largest example is under 4 KiB. 1 MiB matches the server's body limit. */
export const MAX_CONFIG_BYTES = 1 * MIB
/** Hugging Face config.json files are 1-10 KiB; some carry id2label tables of a few hundred KiB. */
export const MAX_MODEL_CONFIG_BYTES = 4 * MIB

export type ReadOptions = {
  /** Refuse files larger than this many bytes. */
  maxBytes: number
  /** The flag or field that named the file, e.g. `--model`. */
  flag: string
  /** What the file should be, for the fix: "a ConfigMap or training_config YAML file". */
  expect: string
}

/**
 * One-line error about a path the user gave: exit 1 (the input cannot be used), or 2 when an
 * input names nothing at all, like an unknown model or GPU name.
 */
export function fileError(path: string, problem: string, fix: string, flag: string, exitCode = 1): ExitError {
  return new ExitError(`${path}: ${problem}: ${fix}`, { path: flag, exitCode })
}

const mib = (n: number) => `${(n / MIB).toFixed(n < MIB ? 2 : 1)} MiB`

function errnoProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied'
    case 'EISDIR':
      return 'is a directory'
    case 'ENOTDIR':
      return 'a part of the path is a file, not a directory'
    case 'EROFS':
      return 'the filesystem is read-only'
    case 'ENOSPC':
      return 'no space left on the device'
    case 'ELOOP':
      return 'too many symbolic links'
    case 'ENAMETOOLONG':
      return 'the name is too long'
    default:
      return `cannot be accessed (${code ?? 'unknown error'})`
  }
}

function kindOf(s: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (s.isFIFO()) return 'a FIFO (named pipe)'
  if (s.isCharacterDevice()) return 'a character device'
  if (s.isBlockDevice()) return 'a block device'
  if (s.isSocket()) return 'a socket'
  return 'not a regular file'
}

/**
 * Reads a regular file of at most `maxBytes`. Never opens a FIFO or device (stat first, then
 * open non-blocking and re-check the descriptor), and never reads more than maxBytes + 1
 * bytes, even from /proc files whose size reads as 0.
 * @example await readBoundedFile('lora.yaml', { maxBytes: MAX_CONFIG_BYTES, flag: 'file', expect: 'a YAML file' })
 */
export async function readBoundedFile(path: string, opts: ReadOptions): Promise<Buffer> {
  const fix = `give the path of ${opts.expect}`
  let s
  try {
    s = await stat(path)
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
    throw fileError(path, errnoProblem(err), fix, opts.flag, missing ? 2 : 1)
  }
  if (s.isDirectory()) throw fileError(path, 'is a directory', fix, opts.flag)
  if (!s.isFile()) throw fileError(path, `is ${kindOf(s)}, not a regular file`, fix, opts.flag)
  if (s.size > opts.maxBytes) throw tooBig(path, `is ${mib(s.size)}`, opts)
  let fh
  try {
    // O_NONBLOCK: if the path was swapped for a FIFO after stat, open still returns at once.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (err) {
    throw fileError(path, errnoProblem(err), fix, opts.flag)
  }
  try {
    const again = await fh.stat()
    if (!again.isFile()) throw fileError(path, `is ${kindOf(again)}, not a regular file`, fix, opts.flag)
    const buf = Buffer.alloc(Math.min(opts.maxBytes + 1, Math.max(again.size + 1, 64 * 1024)))
    let used = 0
    let out = buf
    for (;;) {
      if (used === out.length) {
        if (out.length > opts.maxBytes) throw tooBig(path, `holds more than ${mib(opts.maxBytes)}`, opts)
        const bigger = Buffer.alloc(Math.min(opts.maxBytes + 1, out.length * 2))
        out.copy(bigger, 0, 0, used)
        out = bigger
      }
      const { bytesRead } = await fh.read(out, used, out.length - used, null)
      if (bytesRead === 0) break
      used += bytesRead
    }
    if (used > opts.maxBytes) throw tooBig(path, `holds more than ${mib(opts.maxBytes)}`, opts)
    return out.subarray(0, used)
  } catch (err) {
    if (err instanceof ExitError) throw err
    throw fileError(path, errnoProblem(err), fix, opts.flag)
  } finally {
    await fh.close()
  }
}

function tooBig(path: string, what: string, opts: ReadOptions): ExitError {
  return fileError(path, `${what}, over the ${mib(opts.maxBytes)} limit for ${opts.expect}`, `give the path of a smaller file`, opts.flag)
}

/**
 * statfs magic numbers of kernel pseudo-filesystems (linux/magic.h). Writing there either
 * fails in odd ways or, for recursive mkdir under /proc, spins forever.
 */
const PSEUDO_FS: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0xcafe4a11: 'bpf',
  0x62656570: 'configfs',
  0x6165676c: 'pstore',
  0xde5e81e0: 'efivarfs',
  0x1cd1: 'devpts',
}
const PSEUDO_PREFIXES = ['/proc', '/sys']

/** The nearest ancestor of `path` (itself included) that exists, resolved through symlinks. */
async function nearestExisting(path: string): Promise<{ path: string; real: string; isDir: boolean }> {
  let p = resolve(path)
  for (;;) {
    try {
      const s = await stat(p)
      return { path: p, real: await realpath(p), isDir: s.isDirectory() }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // ENOTDIR: a file sits where a directory should; report that file.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
      const up = dirname(p)
      if (up === p) return { path: p, real: p, isDir: true }
      p = up
    }
  }
}

async function pseudoFs(real: string): Promise<string | undefined> {
  for (const prefix of PSEUDO_PREFIXES) if (real === prefix || real.startsWith(prefix + sep)) return prefix.slice(1)
  try {
    return PSEUDO_FS[(await statfs(real)).type]
  } catch {
    return undefined
  }
}

export type OutputOptions = {
  /** A good value of the flag, for the fix, e.g. `./tuning.yaml`. */
  example?: string
  /** The writer creates missing parent directories itself (mkdir -p), so they may be absent. */
  createsParents?: boolean
}

/**
 * Checks that `path` can be written as a file: not a directory, its parent an existing (or,
 * with createsParents, creatable) writable directory on a real filesystem. Throws a one-line
 * ExitError (exit 1) otherwise.
 * @example await checkOutputFile('tuning.yaml', '-o')
 */
export async function checkOutputFile(path: string, flag: string, opts: OutputOptions = {}): Promise<void> {
  const fix = `choose a file in a writable directory, e.g. ${flag} ${opts.example ?? './tuning.yaml'}`
  // resolve('') is the working directory: an empty value would read as "is a directory".
  if (path.trim() === '') throw new ExitError(`${flag} is empty: ${fix}`, { path: flag, exitCode: 2 })
  const abs = resolve(path)
  let own
  try {
    own = await stat(abs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fileError(path, errnoProblem(err), fix, flag)
  }
  if (own?.isDirectory()) throw fileError(path, 'is a directory, not a file', `give a file name inside it, e.g. ${flag} ${join(path, basename(opts.example ?? 'tuning.yaml'))}`, flag)
  if (own && !own.isFile()) throw fileError(path, `is ${kindOf(own)}, not a regular file`, fix, flag)
  const parent = dirname(abs)
  const near = await nearestExisting(parent).catch((err) => {
    throw fileError(path, errnoProblem(err), fix, flag)
  })
  const fs = await pseudoFs(near.real)
  if (fs) throw fileError(path, `is on ${fs}, a kernel pseudo-filesystem`, fix, flag)
  if (!near.isDir) throw fileError(path, `${near.path} is a file, not a directory`, fix, flag)
  if (near.path !== parent && !opts.createsParents) throw fileError(path, `directory ${parent} does not exist`, `create it (mkdir -p ${parent}) or ${fix}`, flag)
  await writable(near.path, path, fix, flag)
}

/**
 * Checks that `path` can be used as an output directory: an existing writable directory, or
 * a new one whose nearest existing ancestor is a writable directory on a real filesystem.
 * @example await checkOutputDir('runs/my-run', '--output')
 */
export async function checkOutputDir(path: string, flag: string, opts: Pick<OutputOptions, 'example'> = {}): Promise<void> {
  const fix = `choose a directory on a writable disk, e.g. ${flag} ${opts.example ?? 'runs/my-run'}`
  const near = await nearestExisting(path).catch((err) => {
    throw fileError(path, errnoProblem(err), fix, flag)
  })
  const fs = await pseudoFs(near.real)
  if (fs) throw fileError(path, `is on ${fs}, a kernel pseudo-filesystem`, fix, flag)
  if (!near.isDir) {
    const problem = near.path === resolve(path) ? 'is a file, not a directory' : `${near.path} is a file, not a directory`
    throw fileError(path, problem, fix, flag)
  }
  await writable(near.path, path, fix, flag)
}

async function writable(dir: string, path: string, fix: string, flag: string): Promise<void> {
  try {
    await access(dir, constants.W_OK | constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const problem = code === 'EROFS' ? `${dir} is on a read-only filesystem` : `${dir} is not writable (${errnoProblem(err)})`
    throw fileError(path, problem, fix, flag)
  }
}

/**
 * Writes a file after `checkOutputFile`; any error still left (a full disk, a race) is one line.
 * @example await writeOutputFile('tuning.yaml', yaml, '-o')
 */
export async function writeOutputFile(path: string, data: string | Uint8Array, flag: string): Promise<void> {
  await checkOutputFile(path, flag)
  try {
    await writeFile(path, data)
  } catch (err) {
    throw fileError(path, errnoProblem(err), 'choose a file in a writable directory', flag)
  }
}
