// The create-instance form: plans filtered by CPU type, Redundant only where a region has
// two nodes, a template picker, and a live price. The server checks all of it again.
(function () {
  "use strict";

  var HOURS_PER_MONTH = 730;

  function catalog() {
    var el = document.getElementById("catalog-data");
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function byId(list) {
    var map = {};
    (list || []).forEach(function (item) { map[item.id] = item; });
    return map;
  }

  function parts() {
    var form = document.getElementById("create-form");
    var data = catalog();
    if (!form || !data) return null;
    return {
      form: form,
      plans: byId(data.plans),
      regions: byId(data.regions),
      templates: byId(data.templates),
      cpu: form.querySelector("#id_cpu_type"),
      plan: form.querySelector("#id_plan"),
      image: form.querySelector("#id_image"),
      region: form.querySelector("#id_region"),
      redundant: form.querySelector("#id_redundant"),
      why: document.getElementById("redundant-why"),
      price: document.getElementById("price"),
      templateSelect: document.getElementById("template-select"),
      templateDescription: document.getElementById("template-description")
    };
  }

  function filterPlans(p) {
    if (!p.cpu || !p.plan) return;
    var type = p.cpu.value;
    var firstVisible = null;
    Array.prototype.forEach.call(p.plan.options, function (option) {
      var plan = p.plans[option.value];
      var show = !plan || plan.cpu_type === type;
      option.hidden = !show;
      option.disabled = !show;
      if (show && !firstVisible) firstVisible = option;
    });
    Array.prototype.forEach.call(p.plan.querySelectorAll("optgroup"), function (group) {
      var any = Array.prototype.some.call(group.children, function (o) { return !o.hidden; });
      group.hidden = !any;
      group.disabled = !any;
    });
    var selected = p.plan.options[p.plan.selectedIndex];
    if ((!selected || selected.disabled) && firstVisible) p.plan.value = firstVisible.value;
  }

  function updateRedundant(p) {
    if (!p.region || !p.redundant) return;
    var region = p.regions[p.region.value];
    var allowed = !region || region.nodes >= 2;
    p.redundant.disabled = !allowed;
    if (!allowed) p.redundant.checked = false;
    if (p.why) {
      p.why.textContent = allowed ? "" :
        "Not available in " + region.id + ": it has only " + region.nodes +
        " node" + (region.nodes === 1 ? "" : "s") + ".";
    }
  }

  function updatePrice(p) {
    if (!p.price || !p.plan) return;
    var plan = p.plans[p.plan.value];
    if (!plan) { p.price.textContent = "Choose a plan to see the price."; return; }
    var twice = p.redundant && p.redundant.checked;
    var monthly = parseFloat(plan.price_usd) * (twice ? 2 : 1);
    var text = "$" + monthly.toFixed(2) + " per month · $" +
      (monthly / HOURS_PER_MONTH).toFixed(4) + " per hour" + (twice ? " (two nodes)" : "");
    if (p.price.textContent.trim() !== text) p.price.textContent = text;
  }

  function describeTemplate(p) {
    if (!p.templateSelect || !p.templateDescription) return;
    var template = p.templates[p.templateSelect.value];
    p.templateDescription.textContent = template ? (template.description || "") : "";
  }

  function applyTemplate(p) {
    var template = p.templates[p.templateSelect.value];
    describeTemplate(p);
    if (!template) return;
    if (p.cpu && template.cpu_type) p.cpu.value = template.cpu_type;
    filterPlans(p);
    if (p.plan && p.plans[template.plan]) p.plan.value = template.plan;
    if (p.image && template.image) p.image.value = template.image;
    updatePrice(p);
  }

  function sync() {
    var p = parts();
    if (!p) return;
    filterPlans(p);
    updateRedundant(p);
    updatePrice(p);
    describeTemplate(p);
  }

  document.addEventListener("change", function (event) {
    var p = parts();
    if (!p) return;
    var target = event.target;
    if (target === p.templateSelect) { applyTemplate(p); return; }
    if (target === p.cpu) filterPlans(p);
    if (target === p.region) updateRedundant(p);
    if (target === p.cpu || target === p.plan || target === p.region || target === p.redundant) {
      updatePrice(p);
    }
  });

  // With JavaScript the template applies in place, keeping what was typed already.
  document.addEventListener("submit", function (event) {
    if (event.target && event.target.id === "template-picker") {
      var p = parts();
      if (!p) return;
      event.preventDefault();
      applyTemplate(p);
    }
  });

  document.addEventListener("DOMContentLoaded", sync);
  document.addEventListener("htmx:afterSettle", sync);
})();
