import{aT as a}from"./index-DgjnGzzr.js";const r=a("v-spacer","div","VSpacer");export{r as V};
