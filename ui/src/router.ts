import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { useAuth } from '@/stores/auth'

export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/sites' },
  { path: '/login', name: 'login', component: () => import('@/views/LoginView.vue'), meta: { public: true } },
  // Reserved for the auth work: '/device' (approve a `tolu login --device` code) and
  // '/sso/callback' (single sign-on) land here as public routes next to /login.
  { path: '/sites', name: 'sites', component: () => import('@/views/SitesView.vue') },
  { path: '/apps', name: 'apps', component: () => import('@/views/AppsView.vue') },
  { path: '/apps/:id(\\d+)', name: 'app', component: () => import('@/views/AppDetailView.vue'), props: true },
  { path: '/batch-jobs', name: 'batch-jobs', component: () => import('@/views/BatchJobsView.vue') },
  {
    path: '/batch-jobs/:id(\\d+)',
    name: 'batch-job',
    component: () => import('@/views/BatchJobDetailView.vue'),
    props: true,
  },
  { path: '/jobs', name: 'jobs', component: () => import('@/views/JobsView.vue') },
  { path: '/jobs/new', name: 'create-jobs', component: () => import('@/views/CreateJobsView.vue') },
  { path: '/jobs/:id(\\d+)', name: 'job', component: () => import('@/views/JobDetailView.vue'), props: true },
  { path: '/transfers', name: 'transfers', component: () => import('@/views/TransfersView.vue') },
  { path: '/history', name: 'history', component: () => import('@/views/HistoryView.vue') },
  { path: '/:rest(.*)*', name: 'not-found', component: () => import('@/views/NotFoundView.vue') },
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
