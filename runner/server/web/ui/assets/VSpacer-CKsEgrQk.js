import{aT as a}from"./index-B24fDrAK.js";const r=a("v-spacer","div","VSpacer");export{r as V};
