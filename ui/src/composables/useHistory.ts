import { computed, type Ref } from 'vue'
import type { History } from '@/api/types'
import type { ChartSeries } from '@/components/TimeChart.vue'

/** Chart inputs from GET /stats/history: x in seconds, and the series each plot shows. */
export function useHistoryCharts(history: Ref<History | null>) {
  const x = computed(() => (history.value?.points ?? []).map((p) => new Date(p.time).getTime() / 1000))
  const throughput = computed<ChartSeries[]>(() => [
    { label: 'finished', values: (history.value?.points ?? []).map((p) => p.finished), color: '#2e7d32', style: 'bars' },
    { label: 'failed', values: (history.value?.points ?? []).map((p) => p.failed), color: '#c62828', style: 'bars' },
  ])
  const utilization = computed<ChartSeries[]>(() => [
    { label: 'available nodes', values: (history.value?.points ?? []).map((p) => p.available_nodes), color: '#90a4ae', style: 'step' },
    { label: 'busy nodes', values: (history.value?.points ?? []).map((p) => p.busy_nodes), color: '#1976d2', style: 'step' },
    { label: 'running jobs', values: (history.value?.points ?? []).map((p) => p.running), color: '#ed6c02', style: 'step' },
  ])
  const peak = computed(() => {
    const pts = history.value?.points ?? []
    return {
      busyNodes: Math.max(0, ...pts.map((p) => p.busy_nodes)),
      running: Math.max(0, ...pts.map((p) => p.running)),
      available: Math.max(0, ...pts.map((p) => p.available_nodes)),
    }
  })
  return { x, throughput, utilization, peak }
}
