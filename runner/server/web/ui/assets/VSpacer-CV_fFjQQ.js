import{aT as a}from"./index-tBfAKwIP.js";const r=a("v-spacer","div","VSpacer");export{r as V};
