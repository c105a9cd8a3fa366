import{bh as a}from"./index-B2T9-jWe.js";const r=a("v-spacer","div","VSpacer");export{r as V};
