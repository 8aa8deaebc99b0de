/**
 * YAML source positions: where each path of a training_config sits in the file, including
 * paths inside the `training_config.yaml: |` block scalar of a ConfigMap, whose own line 1 is
 * the line after the `|` and whose columns are shifted by the block's indentation.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, type Scalar } from 'yaml'

export type Position = { line: number; column: number }

/** Turns an offset in a (possibly embedded) YAML text into a 1-based file position. */
export type OffsetMapper = (offset: number) => Position

/** Positions of a document's text, when the document is the file itself. */
export function directMapper(lc: LineCounter): OffsetMapper {
  return (offset) => {
    const { line, col } = lc.linePos(offset)
    return { line, column: col }
  }
}

/**
 * Positions of an embedded document: literal block scalars map line for line (shifted by the
 * header line and indentation); any other scalar style folds or escapes its text, so every
 * position falls back to where the scalar starts.
 */
export function embeddedMapper(outerText: string, outerLc: LineCounter, node: Scalar, innerLc: LineCounter): OffsetMapper {
  const start = node.range?.[0] ?? 0
  const header = outerLc.linePos(start)
  const fallback: Position = { line: header.line, column: header.col }
  if (node.type !== 'BLOCK_LITERAL') return () => fallback
  const indent = blockIndent(outerText, start)
  if (indent === undefined) return () => fallback
  return (offset) => {
    const { line, col } = innerLc.linePos(offset)
    return { line: header.line + line, column: col + indent }
  }
}

/** Indentation of a block scalar's content: the explicit indicator, else the first non-blank line's. */
function blockIndent(text: string, headerOffset: number): number | undefined {
  const eol = text.indexOf('\n', headerOffset)
  if (eol < 0) return undefined
  const headerLine = text.slice(headerOffset, eol)
  const explicit = /^[|>][-+]?([1-9])|^[|>]([1-9])[-+]?/.exec(headerLine)
  let pos = eol + 1
  if (explicit) {
    // The indicator is relative to the parent node's indentation: the header's own line start.
    const lineStart = text.lastIndexOf('\n', headerOffset - 1) + 1
    const parentIndent = /^ */.exec(text.slice(lineStart, headerOffset))![0].length
    return parentIndent + Number(explicit[1] ?? explicit[2])
  }
  while (pos < text.length) {
    const next = text.indexOf('\n', pos)
    const line = text.slice(pos, next < 0 ? text.length : next).replace(/\r$/, '')
    if (line.trim().length) return /^ */.exec(line)![0].length
    if (next < 0) break
    pos = next + 1
  }
  return undefined
}

/** Where a path's key and value start; `key` is absent for list items and the root. */
export type PathPosition = { key?: Position; value: Position }

/**
 * Maps dotted paths (`LoraConfig.target_modules[1]`) to positions, walking the YAML AST from
 * the node that holds the sections. Depth is capped: nothing in a tuning config is deeper.
 */
export class PositionIndex {
  private readonly byPath = new Map<string, PathPosition>()
  maxDepth = 0

  constructor(root: Node | null | undefined, map: OffsetMapper, private readonly depthLimit = 32) {
    if (root) this.walk(root, '', map, 0)
  }

  private walk(node: Node, path: string, map: OffsetMapper, depth: number): void {
    this.maxDepth = Math.max(this.maxDepth, depth)
    if (depth > this.depthLimit) return
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = pair.key as Node | null
        const name = isScalar(key) ? String(key.value) : undefined
        if (name === undefined) continue
        const child = path ? `${path}.${name}` : name
        const keyPos = key?.range ? map(key.range[0]) : undefined
        const valueNode = pair.value as Node | null
        let valuePos = valueNode?.range ? map(valueNode.range[0]) : keyPos
        // A block map or list starts on the next line; its key is where a reader looks.
        if (keyPos && valuePos && valuePos.line > keyPos.line) valuePos = keyPos
        if (valuePos) this.byPath.set(child, { key: keyPos, value: valuePos })
        if (valueNode) this.walk(valueNode, child, map, depth + 1)
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const n = item as Node | null
        if (!n?.range) return
        const child = `${path}[${i}]`
        this.byPath.set(child, { value: map(n.range[0]) })
        this.walk(n, child, map, depth + 1)
      })
    }
  }

  /** The position of a path, or of its nearest located ancestor; keys for unknown-key issues. */
  locate(path: string, at: 'key' | 'value' = 'value'): Position | undefined {
    let p = path
    for (;;) {
      const hit = this.byPath.get(p)
      if (hit) return at === 'key' ? (hit.key ?? hit.value) : hit.value
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['))
      if (cut <= 0) return undefined
      p = p.slice(0, cut)
    }
  }
}
