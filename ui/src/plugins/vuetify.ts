import 'vuetify/styles'
import { createVuetify } from 'vuetify'
import { aliases, mdi } from 'vuetify/iconsets/mdi-svg'

export default createVuetify({
  icons: { defaultSet: 'mdi', aliases, sets: { mdi } },
  theme: {
    defaultTheme: 'tolu',
    themes: {
      tolu: {
        dark: false,
        colors: {
          primary: '#1e5a8a',
          secondary: '#4a6572',
          info: '#1976d2',
          success: '#2e7d32',
          warning: '#ed6c02',
          error: '#c62828',
        },
      },
    },
  },
  defaults: {
    VCard: { variant: 'outlined' },
    VTextField: { density: 'compact', variant: 'outlined', hideDetails: 'auto' },
    VSelect: { density: 'compact', variant: 'outlined', hideDetails: 'auto' },
    VAutocomplete: { density: 'compact', variant: 'outlined', hideDetails: 'auto' },
    VTextarea: { density: 'compact', variant: 'outlined', hideDetails: 'auto' },
  },
})
