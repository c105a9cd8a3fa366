import { createRouter, createWebHistory, type RouteComponent, type RouteRecordRaw } from 'vue-router'
import { useAuth } from '@/stores/auth'

type Loader = () => Promise<RouteComponent | { default: RouteComponent }>

function view(path: string, name: string, title: string, component: Loader, extra: Partial<RouteRecordRaw> = {}) {
  return { path, name, component, meta: { title }, ...extra } as RouteRecordRaw
}

export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/sites' },
  view('/login', 'login', 'Log in', () => import('@/views/LoginView.vue'), { meta: { title: 'Log in', public: true } }),
  // Reserved for the auth work: '/device' (approve a `tolu login --device` code) and
  // '/sso/callback' (single sign-on) land here as public routes next to /login.
  view('/sites', 'sites', 'Sites', () => import('@/views/SitesView.vue')),
  view('/apps', 'apps', 'Apps', () => import('@/views/AppsView.vue')),
  view('/apps/:id(\\d+)', 'app', 'App', () => import('@/views/AppDetailView.vue'), { props: true }),
  view('/batch-jobs', 'batch-jobs', 'Batch jobs', () => import('@/views/BatchJobsView.vue')),
  view('/batch-jobs/:id(\\d+)', 'batch-job', 'Batch job', () => import('@/views/BatchJobDetailView.vue'), {
    props: true,
  }),
  view('/jobs', 'jobs', 'Jobs', () => import('@/views/JobsView.vue')),
  view('/jobs/new', 'create-jobs', 'Create jobs', () => import('@/views/CreateJobsView.vue')),
  view('/jobs/:id(\\d+)', 'job', 'Job', () => import('@/views/JobDetailView.vue'), { props: true }),
  view('/transfers', 'transfers', 'Transfers', () => import('@/views/TransfersView.vue')),
  view('/history', 'history', 'History', () => import('@/views/HistoryView.vue')),
  view('/results', 'results', 'Results', () => import('@/views/ResultsView.vue')),
  view('/runs/:id(\\d+)', 'run', 'Run', () => import('@/views/RunView.vue'), { props: true }),
  view('/trends', 'trends', 'Benchmark trends', () => import('@/views/TrendsView.vue')),
  view('/:rest(.*)*', 'not-found', 'Not found', () => import('@/views/NotFoundView.vue')),
]

export function makeRouter() {
  const router = createRouter({ history: createWebHistory('/ui/'), routes })
  router.beforeEach((to) => {
    const auth = useAuth()
    if (!to.meta.public && !auth.loggedIn) {
      return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
    }
    return true
  })
  return router
}
