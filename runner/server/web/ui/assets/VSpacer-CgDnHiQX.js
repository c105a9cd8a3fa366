import{aT as a}from"./index-BhAkEK0C.js";const r=a("v-spacer","div","VSpacer");export{r as V};
