// Names of sites and apps by id, for tables that hold ids (one request each, cached).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/api/http'
import type { App, Page, Site } from '@/api/types'

export const useNames = defineStore('names', () => {
  const sites = ref<Site[]>([])
  const apps = ref<App[]>([])
  let loading: Promise<void> | null = null

  async function load(force = false): Promise<void> {
    if (loading && !force) return loading
    loading = (async () => {
      const [s, a] = await Promise.all([
        api.get<Page<Site>>('/sites', { limit: 10000 }),
        api.get<Page<App>>('/apps', { limit: 10000 }),
      ])
      sites.value = s.results
      apps.value = a.results
    })()
    try {
      await loading
    } catch (err) {
      loading = null
      throw err
    }
  }

  function site(id: number | null | undefined): string {
    return sites.value.find((s) => s.id === id)?.name ?? (id == null ? '—' : `site ${id}`)
  }

  function app(id: number | null | undefined): string {
    return apps.value.find((a) => a.id === id)?.name ?? (id == null ? '—' : `app ${id}`)
  }

  function reset(): void {
    sites.value = []
    apps.value = []
    loading = null
  }

  return { sites, apps, load, site, app, reset }
})
