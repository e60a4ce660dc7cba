using HybridServing.ServiceDefaults;
using HybridServing.EngineSidecar;
using HybridServing.EngineSidecar.RolloutFile;

// The lora-syncer's flags (--config, --health-check-timeout, ...) become Sidecar:* keys first.
var builder = WebApplication.CreateBuilder(LoraSyncerCommandLine.Normalize(args));
builder.AddServiceDefaults();
builder.AddEngineSidecar();
var app = builder.Build();
app.MapEngineSidecar();
app.MapDefaultEndpoints();
return app.RunChecked();
