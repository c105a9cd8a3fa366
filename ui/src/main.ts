import { createPinia } from 'pinia'
import { createApp } from 'vue'
import App from './App.vue'
import vuetify from './plugins/vuetify'
import { makeRouter } from './router'

const app = createApp(App)
app.use(createPinia())
app.use(makeRouter())
app.use(vuetify)
app.mount('#app')
