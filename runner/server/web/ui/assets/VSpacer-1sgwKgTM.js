import{aT as a}from"./index-asYPEKjx.js";const r=a("v-spacer","div","VSpacer");export{r as V};
