import { describe, expect, it } from 'vitest'
import { initialText, paramSpecs, parseIds, parseParam, parseTags } from '@/lib/params'

describe('app parameters -> form fields', () => {
  const specs = paramSpecs({ name: 'world', n: 3, x: 0.5, on: true, opts: { a: 1 }, must: null })
  const by = Object.fromEntries(specs.map((s) => [s.name, s]))

  it('reads the kind from the default; null is required', () => {
    expect(specs.map((s) => [s.name, s.kind, s.required])).toEqual([
      ['name', 'text', false],
      ['n', 'integer', false],
      ['x', 'number', false],
      ['on', 'boolean', false],
      ['opts', 'json', false],
      ['must', 'text', true],
    ])
    expect(initialText(by.opts)).toBe('{"a":1}')
    expect(initialText(by.must)).toBe('')
  })

  it('checks what was typed before it is sent', () => {
    expect(parseParam(by.n, '42')).toEqual({ ok: true, value: 42 })
    expect(parseParam(by.n, '4.2')).toEqual({ ok: false, error: 'n must be a whole number' })
    expect(parseParam(by.x, '1e3')).toEqual({ ok: true, value: 1000 })
    expect(parseParam(by.x, 'abc').ok).toBe(false)
    expect(parseParam(by.opts, '{"b": [1]}')).toEqual({ ok: true, value: { b: [1] } })
    expect(parseParam(by.opts, '{b}').ok).toBe(false)
    expect(parseParam(by.must, '  ')).toEqual({ ok: false, error: 'must is required' })
    expect(parseParam(by.name, '')).toEqual({ ok: true, value: 'world' }) // empty: the default
    expect(parseParam(by.on, false)).toEqual({ ok: true, value: false })
  })

  it('parses tags and parent ids, naming the bad piece', () => {
    expect(parseTags('run=a, kind:b\nx = y ')).toEqual({ tags: { run: 'a', kind: 'b', x: 'y' }, errors: [] })
    expect(parseTags('oops, =v').errors).toEqual(['"oops" is not key=value', '"=v" is not key=value'])
    expect(parseIds('1, 2 3')).toEqual({ ids: [1, 2, 3], errors: [] })
    expect(parseIds('1 x').errors).toEqual(['"x" is not a job id'])
  })
})
