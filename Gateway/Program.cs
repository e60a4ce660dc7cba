using HybridServing.ServiceDefaults;
using HybridServing.Gateway.Tenancy;

// `dotnet HybridServing.Gateway.dll hash-key < key.txt` prints the SHA-256 a keys file holds.
if (args is ["hash-key"]) return HashKeyCommand.Run(Console.In, Console.Out, Console.Error);

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddGateway();
var app = builder.Build();
app.MapGateway();
app.MapDefaultEndpoints();
return app.RunChecked();
