using HybridServing.ServiceDefaults;
using HybridServing.Autoscaler;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddAutoscaler();
var app = builder.Build();
app.MapAutoscaler();
app.MapDefaultEndpoints();
return app.RunChecked();
