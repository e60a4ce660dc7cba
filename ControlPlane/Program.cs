using HybridServing.ServiceDefaults;
using HybridServing.Contracts.Resources;

// `dotnet run --project ControlPlane -- generate-crd k8s/crds` writes the CRD generated from the C# type.
if (args is ["generate-crd", ..]) return CrdGenerator.RunCommand(args[1..]);

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddControlPlane();

var app = builder.Build();
app.MapControlPlane();
app.MapDefaultEndpoints();
return app.RunChecked();
