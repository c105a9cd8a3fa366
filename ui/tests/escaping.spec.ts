import { mount } from '@vue/test-utils'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createVuetify } from 'vuetify'
import StateChip from '@/components/StateChip.vue'

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : /\.(vue|ts)$/.test(name) ? [path] : []
  })
}

describe('text from jobs is text', () => {
  it('renders markup in a value as characters, not elements', () => {
    const hostile = '<img src=x onerror="window.__xss=1">'
    const wrapper = mount(StateChip, { props: { state: hostile, count: 1 }, global: { plugins: [createVuetify()] } })
    expect(wrapper.text()).toContain(hostile)
    expect(wrapper.find('img').exists()).toBe(false)
  })

  it('no view inserts HTML (v-html, innerHTML): every value goes through text interpolation', () => {
    const offenders = sources(join(__dirname, '..', 'src')).filter((path) =>
      /v-html|innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(readFileSync(path, 'utf8')),
    )
    expect(offenders).toEqual([])
  })
})
