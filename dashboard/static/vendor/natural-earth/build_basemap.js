// Builds basemap-50m.geojson from the world-atlas@2.0.2 and topojson-client@3.1.0 npm packages
// (unpacked beside this file with `npm pack` + tar): node build_basemap.js 50m 3
// (land polygons and internal borders, coordinates rounded to 3 decimals, ~100 m); then
// basemap-50m.js = "window.CW_BASEMAP = " + that file + ";".
const topojson = require('./topojson-client-3.1.0/package/dist/topojson-client.js');
const fs = require('fs');
const r = (c, nd) => Array.isArray(c[0]) ? c.map(x => r(x, nd)) : c.map(v => +v.toFixed(nd));
function round(geom, nd) { return {type: geom.type, coordinates: r(geom.coordinates, nd)}; }
const res = process.argv[2], nd = +process.argv[3];
const land = JSON.parse(fs.readFileSync(`world-atlas-2.0.2/package/land-${res}.json`));
const countries = JSON.parse(fs.readFileSync(`world-atlas-2.0.2/package/countries-${res}.json`));
const landGeo = topojson.feature(land, land.objects.land);
const borders = topojson.mesh(countries, countries.objects.countries, (a, b) => a !== b);
const out = {type: "FeatureCollection", features: [
  {type: "Feature", properties: {layer: "land"}, geometry: round(landGeo.features ? landGeo.features[0].geometry : landGeo.geometry, nd)},
  {type: "Feature", properties: {layer: "borders"}, geometry: round(borders, nd)}]};
fs.writeFileSync(`basemap-${res}.geojson`, JSON.stringify(out));
