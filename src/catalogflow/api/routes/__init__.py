"""One module per area of the API, each an APIRouter registered in api/app.py."""
